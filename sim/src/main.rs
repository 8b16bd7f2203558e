fn main() {
    std::process::exit(crosstalk_sim::cli::main());
}

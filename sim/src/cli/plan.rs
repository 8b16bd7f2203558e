//! `crosstalk plan --scenario FILE --seed N`: print the plan a scenario and
//! seed generate, as JSON (wrapped as a regression with `--postmortem`), to
//! keep it as a regression or to edit it by hand before `replay --plan`.

use super::args::PlanArgs;
use super::{CliError, EXIT_PASS};
use crate::plan::{Plan, Regression};
use crate::scenario::Scenario;

pub(super) fn command(args: &PlanArgs) -> Result<i32, CliError> {
    let scenario = Scenario::load(&args.scenario)?;
    let plan = Plan::generate(&scenario, args.seed);
    let json = match &args.postmortem {
        Some(postmortem) => serde_json::to_string_pretty(&Regression {
            postmortem: postmortem.clone(),
            plan,
            catches: None,
            caught_by: None,
        }),
        None => serde_json::to_string_pretty(&plan),
    };
    println!("{}", json.map_err(CliError::Json)?);
    Ok(EXIT_PASS)
}

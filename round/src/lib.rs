//! The round engine: how a fedstake task's rounds run, with no IO — no
//! sockets, clocks, databases or chains (the quinn-proto style). The
//! coordinator drives it over QUIC with SQLite and a reward contract around
//! it; the simulation lab drives the same engine in memory, so a grid
//! measures what a coordinator does.
//!
//! - [`Plan`]: everything a task spec fixes about its rounds, built and
//!   checked once (`task validate`, `task create`, the coordinator, the
//!   client and the lab all build one);
//! - [`RoundState`]: what carries over rounds (cumulative payouts, group
//!   attribution, slashing windows, reputation, the previous aggregate),
//!   rebuilt from stored rounds by [`RoundState::replay`];
//! - [`draw_cohort`] and [`group_cohort`]: who takes part in an attempt,
//!   and [`SpentInputs`]: who may still take part in a round (one input per
//!   client per round under secure aggregation);
//! - [`Attempt`]: the collection of one attempt as a state machine fed
//!   messages and timeouts (`handle_*`) that says what to send and when it
//!   next needs waking (`poll_*`);
//! - [`settle`]: from what an attempt collected to a [`SettledRound`] and
//!   the next state; [`skip_round`] when no attempt can run.

mod attempt;
mod cohort;
mod plan;
mod settle;
mod state;

pub use attempt::{
    Attempt, AttemptId, ClosedPhase, Collected, Participant, RefusalKind, Refused,
    SignedSubmission, StartError,
};
pub use cohort::{Seat, SeatError, SpentInputs, draw_cohort, group_cohort, grouping_seed, seat_of};
pub use plan::{
    ATTRIBUTION_SIGNIFICANCE, DUPLICATE_THRESHOLD, MAX_ATTEMPTS, Plan, PlanError, SecaggPlan,
};
pub use settle::{
    AttemptInputs, Contributions, PlainContribution, SettleError, Settlement, evaluate,
    root_update, settle, skip_round,
};
pub use state::{GroupRecord, INITIAL_REPUTATION, ReplayError, RoundState, SettledRound};

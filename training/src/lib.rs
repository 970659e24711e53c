//! Local training, shared by every party that trains or evaluates a model:
//! the organization's client, the coordinator (which validates on the
//! sponsor's data) and the simulation lab.
//!
//! [`data`] reads datasets (CSV, IDX, NPY, synthetic) into one in-memory
//! form; [`trainer`] trains the task's model on them behind the [`Trainer`]
//! trait (the ndarray CPU backend, and libtorch through tch behind the
//! `torch` feature). Parameters go in and out as the flat vectors of
//! `fedstake_aggregation::model`, so nobody downstream cares which backend
//! trained them. No networking, no storage beyond reading data files.

pub mod data;
pub mod trainer;

pub use data::{DataError, DataSource, Dataset, Schema, SyntheticSpec, synthetic};
pub use trainer::{
    Architecture, BackendOptions, CpuTrainer, Evaluation, LocalUpdate, Optimizer, TrainError,
    Trainer, architecture_for, build_trainer, local_update, optimizer_for, schedule_for,
};

//! Turns a recipe into a `BuildPlan` and executes it.

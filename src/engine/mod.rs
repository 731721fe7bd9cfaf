//! Execution engine (see ARCHITECTURE.md).

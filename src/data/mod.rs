//! Dataset loaders (see ARCHITECTURE.md).

//! Tests of the data layer (synthetic data, files generated in temp dirs, the committed mnist-small).

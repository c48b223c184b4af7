//! A mixed Rust/Python project as `maturin new --mixed` lays it out: module `my_pkg._core`.
use pyo3::prelude::*;

#[pyfunction]
fn double(value: i64) -> i64 {
    let doubled = value * 2; // MARK: double
    doubled
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(double, m)?)?;
    Ok(())
}

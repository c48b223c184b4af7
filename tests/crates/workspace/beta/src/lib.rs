//! The workspace's second extension crate (module `beta`): the same line numbers as alpha's.
use pyo3::prelude::*;

#[pyfunction]
fn shift(value: i64) -> i64 {
    let shifted = value - 100; // MARK: shift
    shifted
}

#[pymodule]
fn beta(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(shift, m)?)?;
    Ok(())
}

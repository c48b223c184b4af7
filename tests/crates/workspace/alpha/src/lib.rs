//! The workspace's first extension crate (module `alpha`).
use pyo3::prelude::*;

#[pyfunction]
fn shift(value: i64) -> i64 {
    let shifted = value + 100; // MARK: shift
    shifted
}

#[pymodule]
fn alpha(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(shift, m)?)?;
    Ok(())
}

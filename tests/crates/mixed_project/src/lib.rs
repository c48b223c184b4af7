//! A mixed Rust/Python project as `maturin new --mixed` lays it out: module `my_pkg._core`.
//! Beside a plain function it has what function breakpoints must reach: a `#[pymethods]`
//! method, a trait impl, a generic function and a closure.
use pyo3::prelude::*;

#[pyfunction]
fn double(value: i64) -> i64 {
    let doubled = value * 2; // MARK: double
    doubled
}

trait Scale {
    fn scale(&self, by: i64) -> i64;
}

struct Meter(i64);

struct Gram(i64);

impl Scale for Meter {
    fn scale(&self, by: i64) -> i64 {
        let scaled = self.0 * by; // MARK: trait-scale
        scaled
    }
}

impl Scale for Gram {
    fn scale(&self, by: i64) -> i64 {
        self.0 * by
    }
}

fn largest<T: PartialOrd + Copy>(items: &[T]) -> T {
    let mut best = items[0]; // MARK: generic-largest
    for &item in items {
        if item > best {
            best = item;
        }
    }
    best
}

/// largest(values) scaled by len(values), plus one through a closure.
#[pyfunction]
fn combine(values: Vec<i64>) -> i64 {
    let meter = Meter(largest(&values));
    let add_one = |x: i64| {
        let next = x + 1; // MARK: closure-add-one
        next
    };
    add_one(meter.scale(values.len() as i64)) + Gram(0).scale(2)
}

#[pyclass]
struct Counter {
    total: i64,
}

#[pymethods]
impl Counter {
    #[new]
    fn new() -> Self {
        Counter { total: 0 }
    }

    fn add(&mut self, amount: i64) -> i64 {
        self.total += amount; // MARK: counter-add
        self.total
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(double, m)?)?;
    m.add_function(wrap_pyfunction!(combine, m)?)?;
    m.add_class::<Counter>()?;
    Ok(())
}

//! rustdemo: one function per thing pyo3_debug_magic diagnoses.
//!
//! Lines that tests and the demo notebook refer to carry a `// MARK: name` comment;
//! they find them by searching for the marker, never by line number.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::collections::HashMap;
use std::fmt::Display;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A multi-line computation on a few locals, to step through.
/// `compute([1, 2, 3])` returns 42.
#[pyfunction]
fn compute(values: Vec<i64>) -> i64 {
    let mut total: i64 = 0; // MARK: compute-start
    let scale: i64 = 3;
    for (index, value) in values.iter().enumerate() {
        let term = value * scale + index as i64; // MARK: compute-loop
        total += term;
    }
    let label = format!("total={}", total);
    let result = total * 2; // MARK: compute-result
    black_box(&label);
    result
}

/// Squares a number; called back from Python to make a Rust -> Python -> Rust stack.
#[pyfunction]
fn square(value: i64) -> i64 {
    let squared = value * value; // MARK: square
    squared
}

/// Calls `callback(value)` and returns its result: a mixed stack when the callback
/// calls back into Rust (for example `lambda v: rustdemo.square(v) + 1`).
#[pyfunction]
fn call_python(callback: &Bound<'_, PyAny>, value: i64) -> PyResult<PyObject> {
    let result = callback.call1((value,))?; // MARK: call-python
    Ok(result.unbind())
}

/// BUG (reference leak): takes a new reference to `obj` and never releases it.
/// `sys.getrefcount(obj)` grows by one per call.
#[pyfunction]
fn leak_reference(obj: &Bound<'_, PyAny>) -> usize {
    let leaked = obj.clone().into_ptr(); // MARK: leak-reference
    black_box(leaked) as usize & 0
}

static SEEN: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// BUG (over-release): releases the *borrowed* argument as if it owned it, one reference per
/// call. The first call with an object also takes two references it never gives back (a
/// "registration"), so that call is safe; from the second call on `obj` loses one reference
/// per call until it is freed while still in use.
#[pyfunction]
fn over_release(obj: &Bound<'_, PyAny>) {
    let address = obj.as_ptr() as usize;
    let mut seen = SEEN.lock().unwrap();
    if !seen.contains(&address) {
        seen.push(address);
        std::mem::forget(obj.clone());
        std::mem::forget(obj.clone());
    }
    unsafe { ffi::Py_DecRef(obj.as_ptr()) }; // MARK: over-release
}

/// BUG (leaked result): returns a new list of `n` ints carrying one reference too many,
/// so the list is never freed even after the caller drops it.
#[pyfunction]
fn leak_result(py: Python<'_>, n: usize) -> PyResult<PyObject> {
    let list = PyList::new(py, 0..n)?;
    let ptr = list.into_ptr();
    unsafe { ffi::Py_IncRef(ptr) }; // MARK: leak-result
    Ok(unsafe { PyObject::from_owned_ptr(py, ptr) })
}

/// BUG (native heap leak): allocates `nbytes` on the Rust heap and forgets it.
#[pyfunction]
fn leak_native(nbytes: usize) -> usize {
    let buffer = vec![7u8; nbytes];
    let length = buffer.len();
    std::mem::forget(buffer); // MARK: leak-native
    length
}

/// CRASH: writes through a null pointer (SIGSEGV).
#[pyfunction]
fn segfault() {
    let target: *mut i32 = black_box(std::ptr::null_mut());
    unsafe { std::ptr::write_volatile(target, 42) }; // MARK: segfault
}

/// CRASH: aborts the process (SIGABRT), as a `panic = "abort"` build does on panic.
#[pyfunction]
fn abort() {
    eprintln!("rustdemo: about to abort");
    std::process::abort(); // MARK: abort
}

/// CRASH: executes an undefined instruction (`ud2`, SIGILL), which is how `core::intrinsics::abort`
/// and some `unreachable_unchecked` paths end.
#[pyfunction]
fn illegal_instruction() {
    unsafe { std::arch::asm!("ud2") }; // MARK: illegal-instruction
}

/// CRASH: a hardware division by zero (SIGFPE). Rust's `/` checks and panics, so this divides
/// with the CPU's `div` directly, as unchecked code in C dependencies does.
#[pyfunction]
fn divide_by_zero() -> u32 {
    let divisor: u32 = black_box(0);
    let quotient: u32;
    unsafe {
        std::arch::asm!("div {divisor:e}", divisor = in(reg) divisor, // MARK: divide-by-zero
                        inout("eax") 7u32 => quotient, inout("edx") 0u32 => _);
    }
    quotient
}

/// CRASH: reads a memory-mapped file past its end after the file shrank (SIGBUS).
#[pyfunction]
fn bus_error() -> PyResult<u8> {
    let file = tempfile_shrunk_to_zero()?;
    unsafe {
        let mapped = libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_SHARED,
                                std::os::fd::AsRawFd::as_raw_fd(&file), 0);
        if mapped == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(std::ptr::read_volatile(mapped as *const u8)) // MARK: bus-error
    }
}

fn tempfile_shrunk_to_zero() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!("rustdemo-bus-{}", std::process::id()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    file.set_len(4096)?;
    file.set_len(0)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 { // MARK: stack-overflow (the overflow faults in the prologue's stack probe)
    let padding = black_box([depth; 64]);
    recurse(depth + 1) + padding[0]
}

/// CRASH: unbounded recursion until the thread's stack overflows (SIGSEGV on the guard page).
#[pyfunction]
fn stack_overflow() -> u64 {
    recurse(0)
}

/// BUG (hang): loops forever while holding the GIL; the Interrupt button cannot stop it.
#[pyfunction]
fn spin_forever() -> u64 {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1)); // MARK: spin
    }
}

/// BUG (hang): sleeps holding the GIL, inside the C library, not in this crate's code.
#[pyfunction]
fn sleep_holding_gil(seconds: f64) -> f64 {
    std::thread::sleep(Duration::from_secs_f64(seconds)); // MARK: sleep-holding-gil
    seconds
}

fn busy_until(deadline: Instant) -> u64 {
    let mut rounds: u64 = 0;
    while Instant::now() < deadline {
        rounds = black_box(rounds + 1); // MARK: worker-loop
    }
    rounds
}

/// Busy-waits for `seconds` with the GIL released (`allow_threads`); returns the rounds done.
/// Run it in a Python thread to have Rust frames on a thread that does not hold the GIL.
#[pyfunction]
fn worker_without_gil(py: Python<'_>, seconds: f64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    py.allow_threads(|| busy_until(deadline))
}

fn sum_chunk(chunk: &[i64]) -> i64 {
    let mut partial: i64 = 0;
    for value in chunk {
        partial += value; // MARK: thread-sum
    }
    partial
}

/// Sums `values` on `threads` native `std::thread` workers with the GIL released.
#[pyfunction]
fn threaded_sum(py: Python<'_>, values: Vec<i64>, threads: usize) -> i64 {
    let threads = threads.max(1);
    let chunk_size = values.len().div_ceil(threads).max(1);
    py.allow_threads(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = values
                .chunks(chunk_size)
                .map(|chunk| scope.spawn(move || sum_chunk(chunk)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        })
    })
}

/// Busy-waits on `threads` named native workers (`rd-worker-N`) for `seconds`, GIL released:
/// threads that never run Python, which py-spy cannot sample.
#[pyfunction]
fn busy_workers(py: Python<'_>, threads: usize, seconds: f64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    py.allow_threads(|| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("rd-worker-{i}"))
                    .spawn(move || busy_until(deadline))
                    .expect("spawn a worker")
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

fn mix_round(state: u64, round: u64) -> u64 {
    let mixed = (state ^ round).wrapping_mul(0x100000001b3); // MARK: busy-inner
    mixed.rotate_left(5)
}

/// CPU-heavy work for profiling: `iterations` rounds of FNV-style mixing.
#[pyfunction]
fn busy_work(iterations: u64) -> u64 {
    let mut state: u64 = 0xcbf29ce484222325;
    for round in 0..iterations {
        state = mix_round(state, round);
    }
    state
}

/// Raises PanicException through PyO3's panic guard (a Rust panic that does not crash).
#[pyfunction]
fn panic_now(message: &str) {
    panic!("rustdemo panicked: {message}"); // MARK: panic
}

/// Locals of the kinds a Rust author reads every day: the pretty-printers' subject.
/// `rust_values([7, 8, 9])` returns 6.
#[pyfunction]
fn rust_values(items: &Bound<'_, PyAny>) -> PyResult<usize> {
    let numbers = vec![7_i64, 8, 9];
    let mut rest = numbers.iter();
    rest.next();
    let maybe: Option<i64> = numbers.first().copied();
    let nothing: Option<String> = None;
    let parsed: Result<i64, String> = "42".parse::<i64>().map_err(|e| e.to_string());
    let failed: Result<i64, String> = Err("bad digit".to_string());
    let mut scores: HashMap<String, i64> = HashMap::new();
    scores.insert("ada".to_string(), 36);
    let shared = Rc::new(vec![1_i64, 2]);
    let threaded = Arc::new(String::from("shared text"));
    let shown: Box<dyn Display> = Box::new(5_i64);
    let checked: PyResult<i64> = Ok(3);
    black_box((&rest, &maybe, &nothing, &parsed, &failed, &scores, &shared, &threaded, &shown, &checked)); // MARK: rust-values
    Ok(numbers.len() + items.len()?)
}

/// A `#[pyclass]` whose method takes Python values of any type: the PyO3 printers' subject.
#[pyclass]
struct Basket {
    label: String,
    count: u64,
}

#[pymethods]
impl Basket {
    #[new]
    fn new(label: String) -> Self {
        Basket { label, count: 0 }
    }

    /// One line about three Python values of any type.
    fn describe(&self, text: &Bound<'_, PyAny>, number: &Bound<'_, PyAny>, items: &Bound<'_, PyAny>) -> PyResult<String> {
        let length = items.len()?; // MARK: basket-describe
        Ok(format!("{} #{}: {} {} {}", self.label, self.count, text, number, length))
    }
}

#[pymodule]
fn rustdemo(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Basket>()?;
    m.add_function(wrap_pyfunction!(compute, m)?)?;
    m.add_function(wrap_pyfunction!(sleep_holding_gil, m)?)?;
    m.add_function(wrap_pyfunction!(busy_workers, m)?)?;
    m.add_function(wrap_pyfunction!(square, m)?)?;
    m.add_function(wrap_pyfunction!(call_python, m)?)?;
    m.add_function(wrap_pyfunction!(leak_reference, m)?)?;
    m.add_function(wrap_pyfunction!(over_release, m)?)?;
    m.add_function(wrap_pyfunction!(leak_result, m)?)?;
    m.add_function(wrap_pyfunction!(leak_native, m)?)?;
    m.add_function(wrap_pyfunction!(segfault, m)?)?;
    m.add_function(wrap_pyfunction!(abort, m)?)?;
    m.add_function(wrap_pyfunction!(stack_overflow, m)?)?;
    m.add_function(wrap_pyfunction!(illegal_instruction, m)?)?;
    m.add_function(wrap_pyfunction!(divide_by_zero, m)?)?;
    m.add_function(wrap_pyfunction!(bus_error, m)?)?;
    m.add_function(wrap_pyfunction!(spin_forever, m)?)?;
    m.add_function(wrap_pyfunction!(worker_without_gil, m)?)?;
    m.add_function(wrap_pyfunction!(threaded_sum, m)?)?;
    m.add_function(wrap_pyfunction!(busy_work, m)?)?;
    m.add_function(wrap_pyfunction!(panic_now, m)?)?;
    m.add_function(wrap_pyfunction!(rust_values, m)?)?;
    Ok(())
}

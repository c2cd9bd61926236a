//! Section ids and the notification-log reader iterators.
//!
//! The readers call back into the log object (`log.select(start, limit)` or
//! `log[section_id]`), so any NotificationLog a user writes is honoured;
//! paging and section-following run here.

use std::collections::VecDeque;

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::values::Notification;
use crate::core::section_id::SectionId;

/// Parses "first,last"; ValueError naming the id when malformed.
#[pyfunction]
pub fn parse_section_id(section_id: &str) -> PyResult<(u64, u64)> {
    SectionId::parse(section_id)
        .map(|s| (s.first, s.last))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The start and limit a section id asks of a log with this section size.
#[pyfunction]
pub fn section_start_and_limit(section_id: &str, section_size: u64) -> PyResult<(u64, u64)> {
    let id = SectionId::parse(section_id).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((id.start(), id.limit(section_size)))
}

#[pyfunction]
pub fn format_section_id(first: u64, last: u64) -> String {
    SectionId::new(first, last).to_string()
}

fn check_section_size(section_size: i64) -> PyResult<u64> {
    if section_size < 1 {
        return Err(PyValueError::new_err(format!(
            "section size must be at least 1, got {section_size}"
        )));
    }
    Ok(section_size as u64)
}

/// Yields notifications by repeated `log.select(start, limit)` calls,
/// stopping after the first short page.
#[pyclass(module = "eventsourcing_rs._core")]
pub struct SelectReader {
    log: Py<PyAny>,
    next_start: i64,
    limit: u64,
    buffer: VecDeque<Py<PyAny>>,
    exhausted: bool,
    /// The error of a row the log's last page stopped at.
    stopped_by: Option<PyErr>,
}

#[pymethods]
impl SelectReader {
    #[new]
    fn new(log: Py<PyAny>, start: i64, section_size: i64) -> PyResult<Self> {
        Ok(SelectReader {
            log,
            next_start: start.max(1),
            limit: check_section_size(section_size)?,
            buffer: VecDeque::new(),
            exhausted: false,
            stopped_by: None,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.buffer.is_empty() && !self.exhausted {
            let page = self
                .log
                .bind(py)
                .call_method1(intern!(py, "select"), (self.next_start, self.limit))?;
            let mut count = 0u64;
            let mut last_id = None;
            for item in page.try_iter()? {
                let item = item?;
                last_id = Some(notification_id(&item)?);
                self.buffer.push_back(item.unbind());
                count += 1;
            }
            if count < self.limit {
                self.exhausted = true;
            }
            // A page that stopped at a row it could not read: its error
            // is raised once the rows before it are taken.
            let plain = page.is_exact_instance_of::<pyo3::types::PyList>();
            if let Some(error) = (!plain)
                .then(|| page.getattr(intern!(py, "stopped_by")).ok())
                .flatten()
            {
                if !error.is_none() {
                    self.exhausted = true;
                    self.stopped_by = Some(PyErr::from_value(error));
                }
            }
            if let Some(id) = last_id {
                self.next_start = id + 1;
            }
        }
        match self.buffer.pop_front() {
            Some(item) => Ok(Some(item)),
            None => match self.stopped_by.take() {
                Some(error) => Err(error),
                None => Ok(None),
            },
        }
    }
}

fn notification_id(item: &Bound<'_, PyAny>) -> PyResult<i64> {
    match item.cast::<Notification>() {
        Ok(n) => Ok(n.get().id),
        Err(_) => item.getattr(intern!(item.py(), "id"))?.extract(),
    }
}

/// Yields notifications by following a log's sections through `next_id`.
#[pyclass(module = "eventsourcing_rs._core")]
pub struct SectionReader {
    log: Py<PyAny>,
    next_section: Option<String>,
    buffer: VecDeque<Py<PyAny>>,
}

#[pymethods]
impl SectionReader {
    #[new]
    fn new(log: Py<PyAny>, start: i64, section_size: i64) -> PyResult<Self> {
        let size = check_section_size(section_size)?;
        let first = start.max(1) as u64;
        Ok(SectionReader {
            log,
            next_section: Some(SectionId::new(first, first + size - 1).to_string()),
            buffer: VecDeque::new(),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        while self.buffer.is_empty() {
            let Some(section_id) = self.next_section.take() else {
                return Ok(None);
            };
            let section = self.log.bind(py).get_item(PyString::new(py, &section_id))?;
            for item in section.getattr(intern!(py, "items"))?.try_iter()? {
                self.buffer.push_back(item?.unbind());
            }
            let next_id = section.getattr(intern!(py, "next_id"))?;
            if !next_id.is_none() {
                let next: String = next_id.extract()?;
                SectionId::parse(&next).map_err(|e| {
                    PyValueError::new_err(format!(
                        "section '{section_id}' of the log gives a bad next id: {e}"
                    ))
                })?;
                self.next_section = Some(next);
            }
        }
        Ok(self.buffer.pop_front())
    }
}

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
            if let Some(error) = stopped_by(&page) {
                self.exhausted = true;
                self.stopped_by = Some(error);
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

/// The error a page of notifications stopped at (see `NotificationPage`).
fn stopped_by(page: &Bound<'_, PyAny>) -> Option<PyErr> {
    if page.is_exact_instance_of::<pyo3::types::PyList>() {
        return None;
    }
    let error = page.getattr(intern!(page.py(), "stopped_by")).ok()?;
    (!error.is_none()).then(|| PyErr::from_value(error))
}

fn notification_id(item: &Bound<'_, PyAny>) -> PyResult<i64> {
    match item.cast::<Notification>() {
        Ok(n) => Ok(n.get().id),
        Err(_) => item.getattr(intern!(item.py(), "id"))?.extract(),
    }
}

/// Yields notifications by following a log's sections through `next_id`.
///
/// With `direct` = (`select`, the log's section size), given for a stock
/// local notification log over a Rust recorder, each section is read with
/// that `select(start, limit)` and its next id worked out here, as the
/// log's `__getitem__` would, without building the section in Python.
#[pyclass(module = "eventsourcing_rs._core")]
pub struct SectionReader {
    log: Py<PyAny>,
    next_section: Option<String>,
    buffer: VecDeque<Py<PyAny>>,
    direct: Option<(Py<PyAny>, u64)>,
    /// The next section, for the direct path: (first, last).
    next_range: Option<SectionId>,
    /// The error of a row the last page stopped at, raised once the rows
    /// before it are taken.
    stopped_by: Option<PyErr>,
}

#[pymethods]
impl SectionReader {
    #[new]
    #[pyo3(signature = (log, start, section_size, direct=None))]
    fn new(
        log: Py<PyAny>,
        start: i64,
        section_size: i64,
        direct: Option<(Py<PyAny>, i64)>,
    ) -> PyResult<Self> {
        let size = check_section_size(section_size)?;
        let first = start.max(1) as u64;
        let range = SectionId::new(first, first + size - 1);
        let direct = match direct {
            Some((select, log_size)) => Some((select, check_section_size(log_size)?)),
            None => None,
        };
        Ok(SectionReader {
            log,
            next_section: direct.is_none().then(|| range.to_string()),
            next_range: direct.is_some().then_some(range),
            buffer: VecDeque::new(),
            direct,
            stopped_by: None,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if let Some((select, log_size)) = &self.direct {
            while self.buffer.is_empty() {
                let Some(range) = self.next_range.take() else {
                    return match self.stopped_by.take() {
                        Some(error) => Err(error),
                        None => Ok(None),
                    };
                };
                let limit = range.limit(*log_size);
                if limit == 0 {
                    return Ok(None);
                }
                let page = select.bind(py).call1((range.start(), limit))?;
                let mut count = 0u64;
                let mut last_id = 0i64;
                for item in page.try_iter()? {
                    let item = item?;
                    last_id = notification_id(&item)?;
                    self.buffer.push_back(item.unbind());
                    count += 1;
                }
                if let Some(error) = stopped_by(&page) {
                    self.stopped_by = Some(error);
                    continue;
                }
                // A full section names the next one, as the log's would.
                if count == limit && last_id >= 0 {
                    let first = last_id as u64 + 1;
                    self.next_range = Some(SectionId::new(first, first + limit - 1));
                }
            }
            return Ok(self.buffer.pop_front());
        }
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

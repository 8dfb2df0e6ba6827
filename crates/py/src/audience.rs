//! Audiences as bytes, and the id dictionary under them.
//!
//! A session keeps each audience as a Roaring bitmap of dense user indices,
//! given to user ids by the session's [`IdDictionary`]. Python reads and
//! extends that dictionary through [`PyIdDictionary`] (`session.ids`), so
//! that a host can build bitmaps elsewhere (pyroaring, ClickHouse) over the
//! same indices and load their bytes as they are.

use crate::convert::show;
use crate::errors;
use crate::host::{user_id, user_ids};
use crate::session::Session;
use nudge_core::primitives::audience::{Audience, AudienceError, IdDictionary, UserIndex};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyInt, PyMemoryView};
use pyo3::PyTraverseError;
use std::error::Error as _;

/// The byte formats of an audience.
#[derive(Clone, Copy)]
pub(crate) enum Format {
    /// The Roaring portable format (pyroaring, CRoaring, Java, roaring-rs).
    Portable,
    /// A ClickHouse `groupBitmap` state of a `UInt32` column.
    ClickHouse,
}

impl Format {
    pub(crate) fn parse(format: &str) -> PyResult<Format> {
        match format {
            "portable" => Ok(Format::Portable),
            "clickhouse" => Ok(Format::ClickHouse),
            other => Err(PyValueError::new_err(format!(
                "`format` is \"portable\" or \"clickhouse\", not {other:?}"
            ))),
        }
    }

    /// Reads an audience; the message of the error names `audience`.
    pub(crate) fn read(self, bytes: &[u8], audience: &str) -> Result<Audience, String> {
        let read = match self {
            Format::Portable => Audience::from_portable(bytes),
            Format::ClickHouse => Audience::from_clickhouse(bytes),
        };
        read.map_err(|e| {
            let what = match (&e, self) {
                (AudienceError::Portable(_), Format::Portable) => {
                    " (the bytes of pyroaring's `BitMap.serialize()`)"
                }
                _ => "",
            };
            let why = e.source().map(|s| format!(": {s}")).unwrap_or_default();
            format!("audience `{audience}`: {e}{what}{why}")
        })
    }

    pub(crate) fn write(self, audience: &Audience) -> Vec<u8> {
        match self {
            Format::Portable => audience.to_portable(),
            Format::ClickHouse => audience.to_clickhouse(),
        }
    }
}

/// The bytes of a `bytes`, `bytearray` or `memoryview`.
pub(crate) fn bytes_of<'py>(
    data: &Bound<'py, PyAny>,
    audience: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(b) = data.cast::<PyBytes>() {
        return Ok(b.clone());
    }
    if data.is_instance_of::<PyByteArray>() || data.is_instance_of::<PyMemoryView>() {
        let copy = data.py().get_type::<PyBytes>().call1((data,))?;
        return Ok(copy.cast_into::<PyBytes>()?);
    }
    Err(PyTypeError::new_err(format!(
        "the members of audience `{audience}` are given as bytes (such as pyroaring's \
         `BitMap.serialize()`), not {}",
        show(data)
    )))
}

/// An audience error as a Python `AudienceError`.
pub(crate) fn audience_error(py: Python<'_>, message: String) -> PyErr {
    errors::new(py, "AudienceError", message)
}

/// The dictionary between user ids and the dense user indices that a
/// session's audiences hold, as Roaring bitmaps.
///
/// Get it from ``session.ids``; it is the session's own, not a copy. Ids
/// get the indices ``0, 1, 2, ...`` in order of first appearance
/// (``intern``, ``intern_many``, ``Session.set_audience``), and an index
/// never changes once given, so bitmaps built on the indices (with
/// pyroaring, in ClickHouse) stay valid as the dictionary grows. Ids are
/// text: the int ``42`` is the id ``"42"``.
#[pyclass(frozen, module = "nudge._native", name = "IdDictionary")]
pub(crate) struct PyIdDictionary {
    session: Py<Session>,
}

impl PyIdDictionary {
    pub(crate) fn new(session: Py<Session>) -> PyIdDictionary {
        PyIdDictionary { session }
    }

    fn read<T>(&self, py: Python<'_>, f: impl FnOnce(&IdDictionary) -> T) -> PyResult<T> {
        self.session.get().with_host(py, |h| f(h.dictionary()))
    }

    fn write<T>(&self, py: Python<'_>, f: impl FnOnce(&mut IdDictionary) -> T) -> PyResult<T> {
        self.session
            .get()
            .with_host_mut(py, |h| f(h.dictionary_mut()))
    }
}

/// A user index from Python, or `None` for an int that cannot be one.
fn index_of(index: &Bound<'_, PyAny>) -> PyResult<Option<UserIndex>> {
    if !index.is_instance_of::<PyInt>() || index.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "a user index is an int, not {}",
            show(index)
        )));
    }
    Ok(index.extract::<u32>().ok().map(UserIndex::from_u32))
}

fn full(py: Python<'_>, e: AudienceError) -> PyErr {
    audience_error(py, e.to_string())
}

#[pymethods]
impl PyIdDictionary {
    /// The index of user ``id`` (a ``str`` or an ``int``), or ``None`` if
    /// the dictionary does not hold it. Never adds the id.
    fn index(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Option<u32>> {
        let id = user_id(id, "argument `id` of `IdDictionary.index`")?;
        self.read(py, |d| d.index(&id).map(UserIndex::get))
    }

    /// The user id of ``index``, or ``None`` if no id has it.
    fn id(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let Some(index) = index_of(index)? else {
            return Ok(None);
        };
        self.read(py, |d| d.id(index).map(str::to_string))
    }

    /// The index of user ``id``, giving it the next one if it has none.
    fn intern(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<u32> {
        let id = user_id(id, "argument `id` of `IdDictionary.intern`")?;
        self.write(py, |d| d.intern(&id))?
            .map(UserIndex::get)
            .map_err(|e| full(py, e))
    }

    /// The indices of ``ids`` (an iterable of ``str`` and ``int``, not a
    /// single ``str``), in order, giving new ids the next indices:
    /// ``BitMap(ids.intern_many(users))`` is the bitmap of those users.
    fn intern_many(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        let ids = user_ids(
            ids,
            "the ids given to `IdDictionary.intern_many`",
            "an id given to `IdDictionary.intern_many`",
        )?;
        self.write(py, |d| {
            ids.iter()
                .map(|id| d.intern(id).map(UserIndex::get))
                .collect::<Result<Vec<u32>, _>>()
        })?
        .map_err(|e| full(py, e))
    }

    /// Every id, in index order: ``to_list()[i]`` is the id of index ``i``.
    /// Interning that list into the dictionary of a new session gives each
    /// id the same index again.
    fn to_list(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.read(py, |d| d.ids().map(str::to_string).collect())
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.read(py, IdDictionary::len)
    }

    fn __contains__(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let id = user_id(id, "an id looked up in an `IdDictionary`")?;
        self.read(py, |d| d.index(&id).is_some())
    }

    fn __repr__(&self) -> String {
        let len = self.session.get().try_with_host(|h| h.dictionary().len());
        match len {
            Some(n) => {
                let s = if n == 1 { "" } else { "s" };
                format!("<nudge.IdDictionary: {n} id{s}>")
            }
            None => "<nudge.IdDictionary (session in use)>".to_string(),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.session)
    }
}

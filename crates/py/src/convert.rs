//! Values between Python and the engine.
//!
//! Python to engine, by the field's declared type:
//!
//! | field type | accepted |
//! |---|---|
//! | `string` | `str` (and its subclasses, such as a `StrEnum`) |
//! | `int` | `int` and integer-like objects (`__index__`), not `bool` |
//! | `float` | `float`, `int`; NaN and infinities are refused |
//! | `bool` | `bool` |
//! | `timestamp` | `datetime` (aware: converted to UTC; naive: read as UTC), milliseconds since the epoch as `int`, an RFC 3339 `str` |
//! | `duration` | `timedelta`, milliseconds as `int`, a literal such as `"10m"` |
//! | `list<string>` | a `list` or `tuple` of `str` |
//!
//! `None` is the missing value of an optional field; fields a context
//! provider fills may be left out too. A value of the wrong
//! Python type raises `TypeError`; a value of the right type that does not
//! fit (an int beyond 64 bits, NaN, a malformed time) raises `ValueError`.
//! Both name the fact type and the field. Times are kept to the
//! millisecond: finer parts of a `datetime` or `timedelta` are dropped
//! (rounded down), and to what Python's `datetime` and `timedelta` hold
//! (years 1 to 9999; up to 999,999,999 days either way): a time or span
//! beyond that is a `ValueError`, so that every value read back converts.

use nudge::{Duration, FactType, FieldId, Timestamp, Value, ValueType};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyDate, PyDateTime, PyDelta, PyDeltaAccess, PyDict, PyFloat, PyInt, PyList, PyString,
    PyTuple, PyTzInfo,
};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

const MS_PER_DAY: i64 = 86_400_000;

/// The earliest and latest times a `datetime` holds (0001-01-01T00:00:00Z
/// and 9999-12-31T23:59:59.999Z), in milliseconds since the epoch.
pub(crate) const EARLIEST: Timestamp = Timestamp::from_millis(-62_135_596_800_000);
pub(crate) const LATEST: Timestamp = Timestamp::from_millis(253_402_300_799_999);

/// The most days a `timedelta` holds, either way.
const MAX_DAYS: i64 = 999_999_999;

/// Whether `t` is a time a `datetime` holds.
pub(crate) fn in_datetime_range(t: Timestamp) -> bool {
    (EARLIEST..=LATEST).contains(&t)
}

/// Whether `ms` milliseconds is a span a `timedelta` holds.
fn in_timedelta_range(ms: i64) -> bool {
    (-MAX_DAYS..=MAX_DAYS).contains(&ms.div_euclid(MS_PER_DAY))
}

/// A time `datetime` holds, or a `ValueError` about `place`.
fn checked_time(t: Timestamp, place: &dyn Place) -> PyResult<Timestamp> {
    if in_datetime_range(t) {
        Ok(t)
    } else {
        Err(bad_value(
            place,
            ValueType::Timestamp,
            format!(
                "{} ms since the epoch is outside the years 1 to 9999 that Python's datetime holds",
                t.as_millis()
            ),
        ))
    }
}

/// A span `timedelta` holds, or a `ValueError` about `place`.
fn checked_span(ms: i64, place: &dyn Place) -> PyResult<Duration> {
    if in_timedelta_range(ms) {
        Ok(Duration::from_millis(ms))
    } else {
        Err(bad_value(
            place,
            ValueType::Duration,
            format!("{ms} ms is longer than the 999999999 days Python's timedelta holds"),
        ))
    }
}

/// Where a value is going, for error messages: "field `amount` of
/// `order_paid`", "argument 1 of host function `uplift`"...
pub(crate) trait Place {
    /// The place, as a phrase.
    fn describe(&self) -> String;
}

/// A field of a fact type.
pub(crate) struct FieldPlace<'a> {
    pub ty: &'a str,
    pub field: &'a str,
}

impl Place for FieldPlace<'_> {
    fn describe(&self) -> String {
        format!("field `{}` of `{}`", self.field, self.ty)
    }
}

impl Place for String {
    fn describe(&self) -> String {
        self.clone()
    }
}

/// A short description of a Python object: its type and a bounded repr.
pub(crate) fn show(obj: &Bound<'_, PyAny>) -> String {
    let ty = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into());
    let repr = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    let repr = if repr.chars().count() > 40 {
        let cut: String = repr.chars().take(37).collect();
        format!("{cut}...")
    } else {
        repr
    };
    format!("{ty} {repr}")
}

fn wrong_type(place: &dyn Place, expected: ValueType, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "{} is {expected}: got {}",
        place.describe(),
        show(obj)
    ))
}

fn bad_value(place: &dyn Place, expected: ValueType, problem: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{} is {expected}: {problem}", place.describe()))
}

fn is_int_like(obj: &Bound<'_, PyAny>) -> bool {
    !obj.is_instance_of::<PyBool>()
        && (obj.is_instance_of::<PyInt>() || obj.hasattr("__index__").unwrap_or(false))
}

/// An integer, or a `ValueError` when it does not fit in 64 bits.
fn int64(obj: &Bound<'_, PyAny>, place: &dyn Place, expected: ValueType) -> PyResult<i64> {
    obj.extract::<i64>().map_err(|e| {
        if e.is_instance_of::<PyOverflowError>(obj.py()) {
            bad_value(
                place,
                expected,
                format!("{} does not fit in 64 bits", show(obj)),
            )
        } else {
            wrong_type(place, expected, obj)
        }
    })
}

/// The text of a `str`; a string that is not Unicode text (a lone
/// surrogate) is a `ValueError` about `place`.
fn text(obj: &Bound<'_, PyAny>, place: &dyn Place, ty: ValueType) -> PyResult<Arc<str>> {
    let s = obj.cast::<PyString>()?;
    match s.to_cow() {
        Ok(t) => Ok(Arc::from(&*t)),
        Err(e) => Err(bad_value(
            place,
            ty,
            format!("the text cannot be read: {e}"),
        )),
    }
}

/// Text already read during one batch, by the address of its `str`.
///
/// Events of a batch share many string objects (a category, a city, a
/// channel), and reading a `str` under the stable ABI of Python 3.9 copies
/// it twice. The cache holds a reference to each `str` it has read, so an
/// address cannot be reused by another object while its entry lives.
#[derive(Default)]
pub(crate) struct Strings {
    read: HashMap<usize, (Py<PyString>, Arc<str>), BuildHasherDefault<AddressHasher>>,
}

/// Entries kept before the cache starts again (unique ids would only fill it).
const STRINGS: usize = 4096;

impl Strings {
    fn text(
        &mut self,
        obj: &Bound<'_, PyAny>,
        place: &dyn Place,
        ty: ValueType,
    ) -> PyResult<Arc<str>> {
        let key = obj.as_ptr() as usize;
        if let Some((_, t)) = self.read.get(&key) {
            return Ok(t.clone());
        }
        let t = text(obj, place, ty)?;
        if self.read.len() >= STRINGS {
            self.read.clear();
        }
        let s = obj.cast::<PyString>()?.clone().unbind();
        self.read.insert(key, (s, t.clone()));
        Ok(t)
    }
}

/// Hashes an address: objects are aligned, so the low bits say little.
#[derive(Default)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Converts a Python object to a value of type `ty` for `place`.
pub(crate) fn to_value(
    obj: &Bound<'_, PyAny>,
    ty: ValueType,
    optional: bool,
    place: &dyn Place,
) -> PyResult<Value> {
    to_value_with(obj, ty, optional, place, None)
}

/// [`to_value`], reading strings through a batch's cache.
fn to_value_with(
    obj: &Bound<'_, PyAny>,
    ty: ValueType,
    optional: bool,
    place: &dyn Place,
    strings: Option<&mut Strings>,
) -> PyResult<Value> {
    if obj.is_none() {
        return if optional {
            Ok(Value::Null)
        } else {
            Err(PyTypeError::new_err(format!(
                "{} is {ty} and required: got None",
                place.describe()
            )))
        };
    }
    Ok(match ty {
        ValueType::String if obj.is_instance_of::<PyString>() => Value::Str(match strings {
            Some(cache) => cache.text(obj, place, ty)?,
            None => text(obj, place, ty)?,
        }),
        ValueType::Int if is_int_like(obj) => Value::Int(int64(obj, place, ty)?),
        ValueType::Float if obj.is_instance_of::<PyFloat>() || is_int_like(obj) => {
            let f: f64 = obj.extract().map_err(|_| wrong_type(place, ty, obj))?;
            if !f.is_finite() {
                return Err(bad_value(place, ty, format!("{f} is not a finite number")));
            }
            Value::Float(f)
        }
        ValueType::Bool if obj.is_instance_of::<PyBool>() => Value::Bool(obj.extract()?),
        ValueType::Timestamp => Value::Timestamp(timestamp(obj, place)?),
        ValueType::Duration => Value::Duration(duration(obj, place)?),
        ValueType::StringList
            if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() =>
        {
            let mut items = Vec::new();
            for item in obj.try_iter()? {
                let item = item?;
                if !item.is_instance_of::<PyString>() {
                    return Err(PyTypeError::new_err(format!(
                        "{} is {ty}: its items must be str, got {}",
                        place.describe(),
                        show(&item)
                    )));
                }
                items.push(text(&item, place, ty)?);
            }
            Value::List(items.into())
        }
        _ => return Err(wrong_type(place, ty, obj)),
    })
}

/// A point in time: a `datetime`, milliseconds, or RFC 3339 text, within
/// the years `datetime` holds.
pub(crate) fn timestamp(obj: &Bound<'_, PyAny>, place: &dyn Place) -> PyResult<Timestamp> {
    let ty = ValueType::Timestamp;
    let t = if obj.is_instance_of::<PyDateTime>() {
        datetime_millis(obj)
            .map(Timestamp::from_millis)
            .map_err(|e| bad_value(place, ty, e))?
    } else if obj.is_instance_of::<PyDate>() {
        return Err(PyTypeError::new_err(format!(
            "{} is {ty}: got a date without a time ({}); pass a datetime",
            place.describe(),
            show(obj)
        )));
    } else if is_int_like(obj) {
        Timestamp::from_millis(int64(obj, place, ty)?)
    } else if obj.is_instance_of::<PyString>() {
        let s = text(obj, place, ty)?;
        s.parse::<Timestamp>()
            .map_err(|e| bad_value(place, ty, e))?
    } else {
        return Err(wrong_type(place, ty, obj));
    };
    // Even a `datetime`: an aware one of year 1 may fall before it in UTC.
    checked_time(t, place)
}

/// A span of time: a `timedelta`, milliseconds, or a literal such as `10m`,
/// within what `timedelta` holds.
pub(crate) fn duration(obj: &Bound<'_, PyAny>, place: &dyn Place) -> PyResult<Duration> {
    let ty = ValueType::Duration;
    let ms = if let Ok(delta) = obj.cast::<PyDelta>() {
        delta_millis(delta).ok_or_else(|| bad_value(place, ty, "too long"))?
    } else if is_int_like(obj) {
        int64(obj, place, ty)?
    } else if obj.is_instance_of::<PyString>() {
        let s = text(obj, place, ty)?;
        s.parse::<Duration>()
            .map_err(|e| bad_value(place, ty, e))?
            .as_millis()
    } else {
        return Err(wrong_type(place, ty, obj));
    };
    checked_span(ms, place)
}

fn delta_millis(delta: &Bound<'_, PyDelta>) -> Option<i64> {
    let days = i64::from(delta.get_days());
    let seconds = i64::from(delta.get_seconds());
    let micros = i64::from(delta.get_microseconds());
    // Python keeps seconds and microseconds non-negative, so this rounds
    // down, negative spans included.
    days.checked_mul(MS_PER_DAY)?
        .checked_add(seconds * 1000 + micros / 1000)
}

struct Epochs {
    aware: Py<PyDateTime>,
    naive: Py<PyDateTime>,
}

fn epochs(py: Python<'_>) -> PyResult<&Epochs> {
    static EPOCHS: PyOnceLock<Epochs> = PyOnceLock::new();
    EPOCHS.get_or_try_init(py, || {
        let utc = PyTzInfo::utc(py)?;
        Ok(Epochs {
            aware: PyDateTime::new(py, 1970, 1, 1, 0, 0, 0, 0, Some(&utc))?.unbind(),
            naive: PyDateTime::new(py, 1970, 1, 1, 0, 0, 0, 0, None)?.unbind(),
        })
    })
}

/// Milliseconds since the epoch of a `datetime`: an aware one is an instant,
/// a naive one is read as UTC.
fn datetime_millis(dt: &Bound<'_, PyAny>) -> PyResult<i64> {
    let py = dt.py();
    let e = epochs(py)?;
    let naive = dt.call_method0("utcoffset")?.is_none();
    let epoch = if naive { &e.naive } else { &e.aware };
    let delta = dt.sub(epoch.bind(py))?;
    let delta = delta.cast::<PyDelta>()?;
    delta_millis(delta).ok_or_else(|| PyValueError::new_err("time out of range"))
}

/// A timestamp as an aware `datetime` in UTC. Input is kept within the
/// years `datetime` holds, but a rule's arithmetic may leave them.
pub(crate) fn datetime<'py>(py: Python<'py>, t: Timestamp) -> PyResult<Bound<'py, PyAny>> {
    if !in_datetime_range(t) {
        return Err(PyValueError::new_err(format!(
            "the time {t} is outside the years 1 to 9999 that Python's datetime holds"
        )));
    }
    let delta = timedelta(py, t.as_millis())?;
    epochs(py)?.aware.bind(py).add(delta)
}

fn timedelta(py: Python<'_>, ms: i64) -> PyResult<Bound<'_, PyDelta>> {
    if !in_timedelta_range(ms) {
        return Err(PyValueError::new_err(format!(
            "the span {} is longer than the 999999999 days Python's timedelta holds",
            Duration::from_millis(ms)
        )));
    }
    let days = ms.div_euclid(MS_PER_DAY);
    let rest = ms.rem_euclid(MS_PER_DAY);
    PyDelta::new(
        py,
        days as i32,
        (rest / 1000) as i32,
        ((rest % 1000) * 1000) as i32,
        true,
    )
}

/// A value as a Python object.
pub(crate) fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Timestamp(t) => datetime(py, *t)?,
        Value::Duration(d) => timedelta(py, d.as_millis())?.into_any(),
        Value::List(items) => PyList::new(py, items.iter().map(|s| &**s))?.into_any(),
    })
}

/// The fields of a fact given as a dict, a dataclass instance, a pydantic
/// model, a named tuple or any mapping, as a dict.
pub(crate) fn fields_dict<'py>(
    obj: &Bound<'py, PyAny>,
    ty_name: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let py = obj.py();
    if let Ok(d) = obj.cast::<PyDict>() {
        return Ok(d.clone());
    }
    let is_class = obj.is_instance_of::<pyo3::types::PyType>();
    if !is_class && obj.hasattr("model_dump")? {
        // A pydantic model: its own view of its fields.
        let dumped = obj.call_method0("model_dump")?;
        return Ok(dumped.cast_into::<PyDict>()?);
    }
    if !is_class && obj.hasattr("__dataclass_fields__")? {
        static FIELDS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let fields = FIELDS.import(py, "dataclasses", "fields")?;
        let out = PyDict::new(py);
        for f in fields.call1((obj,))?.try_iter()? {
            let name = f?.getattr("name")?;
            out.set_item(&name, obj.getattr(name.cast::<PyString>()?)?)?;
        }
        return Ok(out);
    }
    if obj.is_instance_of::<PyTuple>() && obj.hasattr("_asdict")? {
        return Ok(obj.call_method0("_asdict")?.cast_into::<PyDict>()?);
    }
    static MAPPING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let mapping = MAPPING.import(py, "collections.abc", "Mapping")?;
    if obj.is_instance(mapping)? {
        let out = PyDict::new(py);
        out.update(obj.cast::<pyo3::types::PyMapping>()?)?;
        return Ok(out);
    }
    Err(PyTypeError::new_err(format!(
        "the fields of `{ty_name}` are given as a dict, a dataclass, a pydantic model or a mapping, not {}",
        show(obj)
    )))
}

/// The values of a fact of type `t`, one per declared field, from a dict
/// of fields; `names` holds the field names as Python strings.
pub(crate) fn fact_values(
    dict: &Bound<'_, PyDict>,
    t: &FactType,
    names: &[Py<PyString>],
    mut strings: Option<&mut Strings>,
) -> PyResult<Vec<Value>> {
    let py = dict.py();
    let mut values = Vec::with_capacity(t.fields().len());
    let mut found = 0;
    for (f, name) in t.fields().iter().zip(names) {
        let v = match dict.get_item(name.bind(py))? {
            Some(v) => {
                found += 1;
                to_value_with(
                    &v,
                    f.ty,
                    f.optional,
                    &FieldPlace {
                        ty: t.name(),
                        field: &f.name,
                    },
                    strings.as_deref_mut(),
                )?
            }
            None if f.optional => Value::Null,
            // A context provider fills it (and replaces any value given).
            None if filled_by_context(t, &f.name) => Value::Null,
            None => {
                return Err(PyTypeError::new_err(format!(
                    "`{}` needs the field `{}` ({})",
                    t.name(),
                    f.name,
                    f.ty
                )))
            }
        };
        values.push(v);
    }
    if found < dict.len() {
        for key in dict.keys() {
            let known = key
                .cast::<PyString>()
                .ok()
                .and_then(|k| k.to_cow().ok().map(|k| t.field_id(&k).is_some()))
                .unwrap_or(false);
            if !known {
                return Err(unknown_field(t, &key));
            }
        }
    }
    Ok(values)
}

/// Whether field `name` of `t` is one a context provider fills.
fn filled_by_context(t: &FactType, name: &str) -> bool {
    t.field_id(name)
        .is_some_and(|f| t.contexts().iter().any(|c| c.fields.contains(&f)))
}

fn unknown_field(t: &FactType, key: &Bound<'_, PyAny>) -> PyErr {
    let fields: Vec<&str> = t.fields().iter().map(|f| &*f.name).collect();
    let key = match key.cast::<PyString>() {
        Ok(k) => format!("`{}`", k.to_string_lossy()),
        Err(_) => format!("{} (field names are str)", show(key)),
    };
    PyTypeError::new_err(format!(
        "`{}` has no field {key}; its fields are {}",
        t.name(),
        fields.join(", ")
    ))
}

/// Field changes for `modify`, from a dict of fields.
pub(crate) fn field_changes(
    dict: &Bound<'_, PyDict>,
    t: &FactType,
) -> PyResult<Vec<(FieldId, Value)>> {
    let mut out = Vec::with_capacity(dict.len());
    for (key, v) in dict.iter() {
        let f = key
            .cast::<PyString>()
            .ok()
            .and_then(|k| k.to_cow().ok().and_then(|k| t.field_id(&k)))
            .ok_or_else(|| unknown_field(t, &key))?;
        let def = t.field_def(f);
        let value = to_value(
            &v,
            def.ty,
            def.optional,
            &FieldPlace {
                ty: t.name(),
                field: &def.name,
            },
        )?;
        out.push((f, value));
    }
    Ok(out)
}

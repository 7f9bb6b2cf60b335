// SPDX-License-Identifier: Apache-2.0
//! Value conversions between Python and the core: JSON values, timestamps, durations.

use std::time::Duration;

use jetjobs::Timestamp;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyDateTime, PyDelta, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyTzInfo,
};

/// Deeper than this is almost certainly a cycle; `json.dumps` would fail on it too.
const MAX_DEPTH: usize = 256;

/// A JSON value from a Python object, with the types `json.dumps` accepts by default.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    to_json_at(obj, 0)
}

fn to_json_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<serde_json::Value> {
    use serde_json::Value;
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(
            "value is nested too deeply (or is circular) for JSON",
        ));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: `True` is an `int` in Python.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(PyValueError::new_err(
            "integer does not fit in 64 bits and cannot be stored as JSON",
        ));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| {
                PyValueError::new_err("Out of range float values are not JSON compliant")
            });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = serde_json::Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            map.insert(json_key(&k)?, to_json_at(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|v| to_json_at(&v, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|v| to_json_at(&v, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    Err(PyTypeError::new_err(format!(
        "Object of type {} is not JSON serializable",
        obj.get_type().name()?
    )))
}

/// Dict keys as `json.dumps` writes them.
fn json_key(key: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    match to_json(key)? {
        serde_json::Value::Null => Ok("null".into()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(PyTypeError::new_err(format!(
            "keys must be str, int, float, bool or None, not {}",
            key.get_type().name()?
        ))),
    }
}

/// A Python object from a JSON value: dict, list, str, int, float, bool or None.
pub(crate) fn from_json<'py>(
    py: Python<'py>,
    value: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_json(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, from_json(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// An aware `datetime` for a timestamp, in the timestamp's own UTC offset. Python keeps
/// microseconds; the exact nanosecond text stays available from the `*_str` properties.
pub(crate) fn datetime<'py>(py: Python<'py>, ts: &Timestamp) -> PyResult<Bound<'py, PyAny>> {
    static EPOCH: PyOnceLock<Py<PyDateTime>> = PyOnceLock::new();
    let epoch = EPOCH.get_or_try_init(py, || {
        let utc = PyTzInfo::utc(py)?;
        PyDateTime::new(py, 1970, 1, 1, 0, 0, 0, 0, Some(&utc)).map(Bound::unbind)
    })?;
    let nanos = ts.unix_nanos();
    let secs = nanos.div_euclid(1_000_000_000);
    let micros = nanos.rem_euclid(1_000_000_000) / 1_000;
    let delta = PyDelta::new(
        py,
        i32::try_from(secs.div_euclid(86_400))?,
        i32::try_from(secs.rem_euclid(86_400))?,
        i32::try_from(micros)?,
        true,
    )?;
    let utc = epoch.bind(py).as_any().add(delta)?;
    match ts.utc_offset_seconds() {
        0 => Ok(utc),
        offset => {
            let tz = PyTzInfo::fixed_offset(py, PyDelta::new(py, 0, offset, 0, true)?)?;
            utc.call_method1(pyo3::intern!(py, "astimezone"), (tz,))
        }
    }
}

/// A time from the core, as an aware `datetime` in UTC.
pub(crate) struct Time(pub(crate) Timestamp);

impl<'py> IntoPyObject<'py> for Time {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        datetime(py, &self.0)
    }
}

/// A timestamp from an aware `datetime`, a `timedelta` from now, or exact RFC 3339 text.
pub(crate) fn timestamp(obj: &Bound<'_, PyAny>) -> PyResult<Timestamp> {
    let py = obj.py();
    if let Ok(s) = obj.cast::<PyString>() {
        return s.to_cow()?.parse().map_err(crate::error::to_py);
    }
    if obj.is_instance_of::<PyDelta>() {
        return Ok(Timestamp::now().add(obj.extract::<Duration>()?));
    }
    if obj.is_instance_of::<PyDateTime>() {
        if obj.getattr(pyo3::intern!(py, "tzinfo"))?.is_none() {
            return Err(PyValueError::new_err(
                "naive datetime: pass an aware datetime (e.g. with tzinfo=timezone.utc)",
            ));
        }
        let text: String = obj
            .call_method0(pyo3::intern!(py, "isoformat"))?
            .extract()?;
        return text.parse().map_err(crate::error::to_py);
    }
    Err(PyTypeError::new_err(format!(
        "expected datetime, timedelta or RFC 3339 str, not {}",
        obj.get_type().name()?
    )))
}

/// A duration from a `timedelta` or a number of seconds.
pub(crate) fn duration(obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    if obj.is_instance_of::<PyDelta>() {
        return obj.extract::<Duration>();
    }
    let secs: f64 = obj
        .extract()
        .map_err(|_| PyTypeError::new_err("expected a timedelta or a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| PyValueError::new_err("a duration must be finite and not negative"))
}

/// A `timedelta`.
pub(crate) fn timedelta(py: Python<'_>, d: Duration) -> PyResult<Bound<'_, PyDelta>> {
    d.into_pyobject(py)
}

/// `None` for an awaitable with nothing to return: pyo3 would turn `()` into an empty tuple.
pub(crate) fn none(result: PyResult<()>) -> PyResult<Option<()>> {
    result.map(|()| None)
}

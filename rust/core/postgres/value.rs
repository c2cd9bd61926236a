//! Statement parameters as the Python layer gives them, sent in the types
//! the prepared statement asks for (its SQL casts each placeholder), and
//! the column types read back.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

type BoxError = Box<dyn Error + Sync + Send>;

/// One parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum PgValue {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Uuid(u128),
    Array(Vec<PgValue>),
}

fn out_of_range(value: i64, ty: &Type) -> BoxError {
    format!("{value} is out of range for a parameter of type {ty}").into()
}

impl ToSql for PgValue {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (PgValue::Null, _) => Ok(IsNull::Yes),
            (PgValue::Int(v), &Type::INT2) => i16::try_from(*v)
                .map_err(|_| out_of_range(*v, ty))?
                .to_sql(ty, out),
            (PgValue::Int(v), &Type::INT4) => i32::try_from(*v)
                .map_err(|_| out_of_range(*v, ty))?
                .to_sql(ty, out),
            (PgValue::Int(v), &Type::INT8) => v.to_sql(ty, out),
            (PgValue::Text(s), _) if ty.name() == "text" || *ty == Type::VARCHAR => {
                s.as_str().to_sql(ty, out)
            }
            (PgValue::Bytes(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            (PgValue::Uuid(u), &Type::UUID) => {
                out.extend_from_slice(&u.to_be_bytes());
                Ok(IsNull::No)
            }
            (PgValue::Array(items), _) => match ty.kind() {
                tokio_postgres::types::Kind::Array(_) => items.to_sql(ty, out),
                _ => Err(format!("a list given for a parameter of type {ty}").into()),
            },
            (value, _) => Err(format!("{value:?} given for a parameter of type {ty}").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::TEXT
                | Type::VARCHAR
                | Type::BYTEA
                | Type::UUID
        ) || matches!(ty.kind(), tokio_postgres::types::Kind::Array(inner) if PgValue::accepts(inner))
    }

    to_sql_checked!();
}

/// A uuid column, as the 128-bit number its 16 bytes spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawUuid(pub u128);

impl<'a> FromSql<'a> for RawUuid {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let bytes: [u8; 16] = raw
            .try_into()
            .map_err(|_| format!("a uuid of {} bytes", raw.len()))?;
        Ok(RawUuid(u128::from_be_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
}

/// An integer column of any width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnyInt(pub i64);

impl<'a> FromSql<'a> for AnyInt {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(AnyInt(match *ty {
            Type::INT2 => i64::from(i16::from_sql(ty, raw)?),
            Type::INT4 => i64::from(i32::from_sql(ty, raw)?),
            _ => i64::from_sql(ty, raw)?,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_sent_in_the_width_asked_for() {
        let mut out = BytesMut::new();
        PgValue::Int(7).to_sql(&Type::INT4, &mut out).unwrap();
        assert_eq!(&out[..], &7i32.to_be_bytes());
        let mut out = BytesMut::new();
        assert!(PgValue::Int(1 << 40).to_sql(&Type::INT4, &mut out).is_err());
    }

    #[test]
    fn uuids_are_sixteen_big_endian_bytes() {
        let mut out = BytesMut::new();
        PgValue::Uuid(0x0102).to_sql(&Type::UUID, &mut out).unwrap();
        assert_eq!(out.len(), 16);
        assert_eq!(
            RawUuid::from_sql(&Type::UUID, &out).unwrap(),
            RawUuid(0x0102)
        );
        assert!(RawUuid::from_sql(&Type::UUID, &[1, 2]).is_err());
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_refused() {
        let mut out = BytesMut::new();
        assert!(PgValue::Text("x".into())
            .to_sql(&Type::UUID, &mut out)
            .is_err());
    }
}

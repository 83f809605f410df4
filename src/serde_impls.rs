//! Serialization (feature `serde`): the address types as their text forms
//! (and back), events as plain records without the connection.

use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::addr::Addr;
use crate::policy::banlist::Subnet;
use crate::policy::tags::PeerId;
use crate::runtime::event::Event;
use crate::types::DialError;

/// Serializes as its `Display` text and deserializes through `FromStr`.
macro_rules! as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(D::Error::custom)
            }
        }
    };
}

as_text!(Addr);
as_text!(Subnet);

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PeerId::from(String::deserialize(d)?.as_str()))
    }
}

impl Serialize for DialError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An event as a record: its kind, the connection's id and address when it
/// is about one, and the fields of its kind (the connection itself is
/// never serialized).
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut r = s.serialize_struct("Event", 6)?;
        r.serialize_field("kind", self.kind())?;
        r.serialize_field("id", &self.id().map(|id| id.0))?;
        let addr = match self {
            Event::Connected { conn, .. } | Event::Accepted { conn } => {
                Some(conn.remote_addr().clone())
            }
            Event::Disconnected { req, .. } | Event::DialFailed { req, .. } => req.addr().cloned(),
            Event::InboundClosed { addr, .. } => Some(addr.clone()),
            Event::Listening { addr }
            | Event::ListenError { addr, .. }
            | Event::ListenerClosed { addr } => addr.clone(),
            _ => None,
        };
        r.serialize_field("addr", &addr)?;
        let (reason, error, retry_ms) = match self {
            Event::Disconnected { reason, .. } | Event::InboundClosed { reason, .. } => {
                (Some(reason.to_string()), None, None)
            }
            Event::DialFailed {
                error, retry_in, ..
            } => (
                None,
                Some(error.to_string()),
                retry_in.map(|d| d.as_millis() as u64),
            ),
            Event::ListenError {
                error, retry_in, ..
            } => (None, Some(error.clone()), Some(retry_in.as_millis() as u64)),
            Event::SaveFailed { error, .. } | Event::ThreadFailed { error, .. } => {
                (None, Some(error.clone()), None)
            }
            _ => (None, None, None),
        };
        r.serialize_field("reason", &reason)?;
        r.serialize_field("error", &error)?;
        r.serialize_field("retry_in_ms", &retry_ms)?;
        r.end()
    }
}

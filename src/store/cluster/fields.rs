//! The stream's entries: the script that appends one and assigns its id, the fields an event
//! becomes, and the entry the loop gets back from them.
//!
//! An entry's Redis id is `N-0`, where N, its *position*, is what the script assigned: the
//! largest of Redis's clock in microseconds, the stream's last position + 1, and the highest
//! position the publishing node has seen + 1. So positions grow, are never reused, and follow
//! the time as section 2 of the spec wants ids to; Redis's own `ms-seq` ids are never used (a
//! millisecond can hold thousands of entries). An event without an id of its own gets its
//! position as its id. Fields, in this order:
//!
//! | field | value |
//! |---|---|
//! | `id` | the event's id: its position in decimal, or the publisher's own |
//! | `type` | the event type; absent for the default `message` |
//! | `retry` | the `retry` milliseconds; absent when none |
//! | `topic` | one field per topic; none for the empty topic alone |
//! | `private` | `1` for an event only authorized subscribers may receive; absent otherwise |
//! | `form` | `urn` when an assigned id is written as a `urn:uuid:` (the Mercure hub's); absent for a decimal id |
//! | `data` | the data |
//!
//! An entry whose `id` equals its position was assigned by the script.

use redis::Value;

use super::super::entry::Entry;
use crate::event::{Event, Topics};
use crate::frame::{self, IdForm};

/// Appends one event to the stream and returns its position, in decimal.
///
/// KEYS[1]: the stream. ARGV[1]: entries to keep (`MAXLEN ~`); ARGV[2]: the highest position
/// the publishing node has seen; ARGV[3]: the publisher's own id, or "" to assign one; ARGV[4..]:
/// the other fields, as name/value pairs. Redis replicates the `XADD` it runs (with its id), not
/// the script, so a replica holds the same positions.
///
/// Lua numbers are doubles: positions are exact below 2^53, which microseconds since 1970 reach
/// in the year 2255; the script refuses to go beyond rather than round.
pub const APPEND: &str = r"
local key = KEYS[1]
local now = redis.call('TIME')
local n = tonumber(now[1]) * 1000000 + tonumber(now[2])
local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
if newest then
  local last = tonumber(string.match(newest[1], '^%d+'))
  if last >= n then n = last + 1 end
end
local seen = tonumber(ARGV[2])
if seen >= n then n = seen + 1 end
local function append(position)
  if position >= 9007199254740992 then
    return nil, 'ssed: stream positions have reached 2^53'
  end
  local digits = string.format('%d', position)
  local id = ARGV[3]
  if id == '' then id = digits end
  local added = redis.pcall('XADD', key, 'MAXLEN', '~', ARGV[1], digits .. '-0', 'id', id,
    unpack(ARGV, 4))
  if type(added) == 'table' and added.err then return nil, added.err end
  return digits
end
local digits, err = append(n)
if not digits then
  -- The newest entry was deleted by hand: its id is still the floor of the next one.
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local last = tonumber(string.match(info[i + 1], '^%d+'))
      if last >= n then n = last + 1 end
    end
  end
  digits, err = append(n)
end
if not digits then return redis.error_reply(err) end
return digits
";

/// Calls `arg` with the script's arguments after the highest seen position: the publisher's own
/// id (or "") and the field pairs of `event`, whose id, when assigned, is written in `form`.
pub fn script_args(event: &Event, form: IdForm, mut arg: impl FnMut(&[u8])) {
    arg(event.id.as_bytes());
    if !event.event_type.is_empty() && event.event_type != "message" {
        arg(b"type");
        arg(event.event_type.as_bytes());
    }
    if let Some(ms) = event.retry {
        let mut digits = [0u8; 20];
        arg(b"retry");
        arg(frame::decimal(u64::from(ms), &mut digits).as_bytes());
    }
    if Topics::of(event) != Topics::Default {
        for topic in &event.topics {
            arg(b"topic");
            arg(topic.as_bytes());
        }
    }
    if event.private {
        arg(b"private");
        arg(b"1");
    }
    if form == IdForm::Urn && event.id.is_empty() {
        arg(b"form");
        arg(b"urn");
    }
    arg(b"data");
    arg(event.data.as_bytes());
}

/// One stream entry as the loop delivers it: encoded once, with its position.
#[derive(Debug)]
pub struct Decoded {
    pub entry: Entry,
    /// The entry's Redis id, `position-sequence` (the sequence is 0 for entries ssed wrote).
    pub redis_id: (u64, u64),
}

/// Why an entry cannot be delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum BadEntry {
    /// The reply is not shaped like a stream entry: the key holds something else.
    Malformed,
    /// The entry is not one ssed wrote, or would corrupt the stream; its Redis id, and why.
    Refused((u64, u64), &'static str),
}

/// Parses a Redis stream id, `MS-SEQ`.
pub fn parse_redis_id(text: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(text).ok()?;
    let (ms, seq) = text.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The Redis id of an entry of an `XRANGE` or `XREAD` reply.
pub fn redis_id_of(entry: &Value) -> Option<(u64, u64)> {
    match entry {
        Value::Array(parts) => match parts.first() {
            Some(Value::BulkString(id)) => parse_redis_id(id),
            _ => None,
        },
        _ => None,
    }
}

/// Decodes one entry of an `XRANGE` or `XREAD` reply: `[id, [field, value, ...]]`.
pub fn decode(value: &Value) -> Result<Decoded, BadEntry> {
    let Value::Array(parts) = value else {
        return Err(BadEntry::Malformed);
    };
    let [Value::BulkString(id), Value::Array(fields)] = parts.as_slice() else {
        return Err(BadEntry::Malformed);
    };
    let redis_id = parse_redis_id(id).ok_or(BadEntry::Malformed)?;
    let refused = |why| BadEntry::Refused(redis_id, why);
    if redis_id.1 != 0 {
        // Positions are unique only for ids ssed assigned.
        return Err(refused("its id was not assigned by ssed"));
    }
    let mut event = Event::default();
    let mut private = false;
    let mut urn = false;
    let mut has_id = false;
    for pair in fields.chunks(2) {
        let [Value::BulkString(name), Value::BulkString(value)] = pair else {
            return Err(refused("a field is not a string pair"));
        };
        let text = || std::str::from_utf8(value).map_err(|_| refused("a field is not UTF-8"));
        match name.as_slice() {
            b"id" => {
                event.id = text()?.to_owned();
                has_id = true;
            }
            b"type" => event.event_type = text()?.to_owned(),
            b"retry" => {
                let ms = frame::parse_retry(text()?).map_err(|_| refused("a bad retry"))?;
                event.retry = Some(ms);
            }
            b"topic" => event.topics.push(text()?.to_owned()),
            b"private" => private = value.as_slice() == b"1",
            b"form" => urn = value.as_slice() == b"urn",
            b"data" => event.data = text()?.to_owned(),
            // Fields a later ssed may add are skipped, so that nodes can be upgraded one by one.
            _ => {}
        }
    }
    if !has_id || event.id.is_empty() {
        return Err(refused("it has no id field"));
    }
    event
        .validate()
        .map_err(|_| refused("its type or id holds CR, LF or NUL"))?;
    let mut digits = [0u8; frame::URN_UUID_LEN];
    let assigned = event.id.parse::<u64>().ok() == Some(redis_id.0);
    let id = if urn && assigned {
        frame::urn_uuid(redis_id.0, &mut digits)
    } else {
        &event.id
    };
    let encoded = frame::encode(id, &event.event_type, event.retry, &event.data);
    let mut entry = Entry::new(encoded, Topics::of(&event), private);
    entry.position = redis_id.0;
    Ok(Decoded { entry, redis_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    /// The reply entry Redis would hold for `event` at `position`.
    fn stored(position: u64, event: &Event, form: IdForm) -> Value {
        let mut args: Vec<Vec<u8>> = Vec::new();
        script_args(event, form, |a| args.push(a.to_vec()));
        let own = args.remove(0);
        let id = if own.is_empty() {
            position.to_string().into_bytes()
        } else {
            own
        };
        let mut fields = vec![bulk("id"), Value::BulkString(id)];
        fields.extend(args.into_iter().map(Value::BulkString));
        Value::Array(vec![bulk(&format!("{position}-0")), Value::Array(fields)])
    }

    #[test]
    fn an_event_survives_the_stream() {
        let event = Event::new("a\r\nb")
            .topic("x")
            .topic("y")
            .event_type("update")
            .retry(250)
            .private();
        let decoded = decode(&stored(1_700_000_000_000_001, &event, IdForm::Decimal)).unwrap();
        assert_eq!(decoded.entry.position, 1_700_000_000_000_001);
        assert!(decoded.entry.is_private());
        assert_eq!(
            &decoded.entry.frame[..],
            b"id: 1700000000000001\nevent: update\nretry: 250\ndata: a\ndata: b\n\n"
        );
        assert!(decoded.entry.matches(&[Box::from("y")]));
        assert!(!decoded.entry.matches(&[Box::from("")]));
    }

    #[test]
    fn own_ids_and_the_empty_topic_travel_too() {
        let event = Event::new("").id("mine").event_type("message");
        let decoded = decode(&stored(7, &event, IdForm::Urn)).unwrap();
        assert_eq!(&decoded.entry.frame[..], b"id: mine\ndata: \n\n");
        assert!(decoded.entry.matches(&[Box::from("")]));
        assert!(!decoded.entry.is_private());
        // An id the stream assigned for the hub comes back as the hub writes its ids.
        let hub = decode(&stored(
            1_700_000_000_000_002,
            &Event::new("h"),
            IdForm::Urn,
        ))
        .unwrap();
        let mut urn = [0u8; frame::URN_UUID_LEN];
        assert_eq!(
            hub.entry.id(),
            frame::urn_uuid(1_700_000_000_000_002, &mut urn).as_bytes()
        );
    }

    #[test]
    fn foreign_or_hostile_entries_are_refused() {
        let mut entry = stored(7, &Event::new("x"), IdForm::Decimal);
        if let Value::Array(parts) = &mut entry {
            parts[0] = bulk("7-1");
        }
        assert!(matches!(decode(&entry), Err(BadEntry::Refused((7, 1), _))));
        let injected = Value::Array(vec![
            bulk("8-0"),
            Value::Array(vec![
                bulk("id"),
                bulk("1\nevent: x"),
                bulk("data"),
                bulk(""),
            ]),
        ]);
        assert!(matches!(decode(&injected), Err(BadEntry::Refused(_, _))));
        let no_id = Value::Array(vec![
            bulk("9-0"),
            Value::Array(vec![bulk("data"), bulk("")]),
        ]);
        assert!(matches!(decode(&no_id), Err(BadEntry::Refused(_, _))));
        assert_eq!(decode(&bulk("x")).unwrap_err(), BadEntry::Malformed);
    }
}

//! The DNS wire format (RFC 1035, with RFC 2782's SRV and RFC 6891's OPT), as much of
//! it as a cluster resolver needs: read a query's header and question, write an
//! answer. Forwarded queries travel as the bytes they came in, so nothing else is
//! parsed.
//!
//! A small codec of our own rather than hickory-proto: the server answers one question
//! with A, AAAA, SRV, CNAME and SOA records and reads nothing but queries, which takes a
//! few hundred lines; the library and its dependencies would cost more build time than
//! that on every clean build.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

/// Response codes.
pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const NOTIMP: u8 = 4;

/// What a reply over UDP may hold without EDNS (RFC 1035 4.2.1).
pub const CLASSIC_UDP_BYTES: usize = 512;
/// The UDP size this server advertises in its OPT record (the DNS flag day's figure).
pub const EDNS_UDP_BYTES: u16 = 1232;

/// A query's parts the server reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub opcode: u8,
    pub recursion_desired: bool,
    /// The name asked for, as sent (case kept, without the root's trailing dot).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The UDP size the client takes (its OPT record), None without EDNS.
    pub edns_udp_bytes: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Soa {
        mname: String,
        rname: String,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
}

impl RecordData {
    pub fn address(ip: IpAddr) -> RecordData {
        match ip {
            IpAddr::V4(v4) => RecordData::A(v4),
            IpAddr::V6(v6) => RecordData::Aaaa(v6),
        }
    }

    pub fn rtype(&self) -> u16 {
        match self {
            RecordData::A(_) => TYPE_A,
            RecordData::Aaaa(_) => TYPE_AAAA,
            RecordData::Cname(_) => TYPE_CNAME,
            RecordData::Srv { .. } => TYPE_SRV,
            RecordData::Soa { .. } => TYPE_SOA,
        }
    }
}

/// One resource record of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: RecordData,
}

/// A reply's sections and code, before it is written for a query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub rcode: u8,
    /// Authoritative (the cluster's own names); forwarded replies are not built here.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

/// Reads a query: its header, its one question and an OPT record if any.
pub fn parse_query(bytes: &[u8]) -> Result<Query, ParseError> {
    if bytes.len() < 12 {
        return Err(ParseError("shorter than a header"));
    }
    let word = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let (id, flags) = (word(0), word(2));
    if flags & 0x8000 != 0 {
        return Err(ParseError("a response, not a query"));
    }
    if word(4) != 1 {
        return Err(ParseError("not exactly one question"));
    }
    let (name, mut at) = read_name(bytes, 12)?;
    let fixed = bytes.get(at..at + 4).ok_or(ParseError("question cut short"))?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    at += 4;
    // Skip answers and authority (a query has none, but be lenient), then look for OPT.
    let mut edns_udp_bytes = None;
    let records = usize::from(word(6)) + usize::from(word(8)) + usize::from(word(10));
    for index in 0..records {
        let (_, after_name) = read_name(bytes, at)?;
        let fixed = bytes
            .get(after_name..after_name + 10)
            .ok_or(ParseError("record cut short"))?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let length = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if rtype == TYPE_OPT && index >= usize::from(word(6)) + usize::from(word(8)) {
            edns_udp_bytes = Some(class.max(CLASSIC_UDP_BYTES as u16));
        }
        at = after_name + 10 + length;
        if at > bytes.len() {
            return Err(ParseError("record data cut short"));
        }
    }
    Ok(Query {
        id,
        opcode: ((flags >> 11) & 0xf) as u8,
        recursion_desired: flags & 0x0100 != 0,
        name,
        qtype,
        qclass,
        edns_udp_bytes,
    })
}

/// Reads a (possibly compressed) name at `at`: the name, dot-separated without the
/// trailing dot ("" for the root), and where the bytes after it start.
fn read_name(bytes: &[u8], mut at: usize) -> Result<(String, usize), ParseError> {
    let mut name = String::new();
    let mut end = None;
    // Pointers must go backwards, so a loop of them ends; bound the hops anyway.
    for _ in 0..128 {
        let length = *bytes.get(at).ok_or(ParseError("name cut short"))?;
        match length {
            0 => {
                return Ok((name, end.unwrap_or(at + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let low = *bytes.get(at + 1).ok_or(ParseError("pointer cut short"))?;
                let target = (usize::from(l & 0x3f) << 8) | usize::from(low);
                if target >= at {
                    return Err(ParseError("a name pointer that does not point back"));
                }
                end.get_or_insert(at + 2);
                at = target;
            }
            l if l & 0xc0 != 0 => return Err(ParseError("unknown label type")),
            l => {
                let label = bytes
                    .get(at + 1..at + 1 + usize::from(l))
                    .ok_or(ParseError("label cut short"))?;
                if !name.is_empty() {
                    name.push('.');
                }
                // Labels are bytes; names outside ASCII are not the cluster's and are
                // only compared, so a lossy reading is enough.
                name.push_str(&String::from_utf8_lossy(label));
                if name.len() > 253 {
                    return Err(ParseError("name longer than 253 characters"));
                }
                at += 1 + usize::from(l);
            }
        }
    }
    Err(ParseError("too many name pointers"))
}

/// Writes `reply` to `query`, within `limit` bytes: when the answer does not fit, the
/// records are left out and the truncated bit set, so the client asks again over TCP.
pub fn write_reply(query: &Query, reply: &Reply, limit: usize) -> Vec<u8> {
    let full = encode(query, reply, false);
    if full.len() <= limit {
        return full;
    }
    let empty = Reply {
        rcode: reply.rcode,
        authoritative: reply.authoritative,
        ..Reply::default()
    };
    encode(query, &empty, true)
}

/// A reply with no records and `rcode` (SERVFAIL, NOTIMP, FORMERR).
pub fn error_reply(query: &Query, rcode: u8) -> Vec<u8> {
    encode(
        query,
        &Reply {
            rcode,
            ..Reply::default()
        },
        false,
    )
}

/// FORMERR for bytes that did not parse as a query but carry an id to answer.
pub fn format_error(bytes: &[u8]) -> Option<Vec<u8>> {
    let id = bytes.get(..2)?;
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(id);
    out.extend_from_slice(&(0x8000u16 | u16::from(FORMERR)).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

fn encode(query: &Query, reply: &Reply, truncated: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut flags: u16 = 0x8000 | (u16::from(query.opcode) << 11) | 0x0080 | u16::from(reply.rcode & 0xf);
    if reply.authoritative {
        flags |= 0x0400;
    }
    if truncated {
        flags |= 0x0200;
    }
    if query.recursion_desired {
        flags |= 0x0100;
    }
    let additional = reply.additional.len() + usize::from(query.edns_udp_bytes.is_some());
    out.extend_from_slice(&query.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for count in [1, reply.answers.len(), reply.authority.len(), additional] {
        out.extend_from_slice(&(count as u16).to_be_bytes());
    }
    write_name(&mut out, &query.name);
    out.extend_from_slice(&query.qtype.to_be_bytes());
    out.extend_from_slice(&query.qclass.to_be_bytes());
    for record in reply.answers.iter().chain(&reply.authority).chain(&reply.additional) {
        write_record(&mut out, record);
    }
    if query.edns_udp_bytes.is_some() {
        // OPT: root name, our UDP size as the class, no extended rcode, no options.
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&EDNS_UDP_BYTES.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    out
}

fn write_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let label = &label.as_bytes()[..label.len().min(63)];
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
}

fn write_record(out: &mut Vec<u8>, record: &Record) {
    write_name(out, &record.name);
    out.extend_from_slice(&record.data.rtype().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&record.ttl.to_be_bytes());
    let length_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match &record.data {
        RecordData::A(ip) => out.extend_from_slice(&ip.octets()),
        RecordData::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
        RecordData::Cname(target) => write_name(out, target),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => {
            for value in [priority, weight, port] {
                out.extend_from_slice(&value.to_be_bytes());
            }
            write_name(out, target);
        }
        RecordData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum,
        } => {
            write_name(out, mname);
            write_name(out, rname);
            for value in [serial, refresh, retry, expire, minimum] {
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
    }
    let length = (out.len() - length_at - 2) as u16;
    out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
}

/// A query for `name` and `qtype` as a client writes it (recursion desired), for
/// tests and for the forwarder's health checks.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    write_name(&mut out, name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// A reply's header fields and answer records, read back (tests; the forwarder reads
/// only the id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    pub id: u16,
    pub rcode: u8,
    pub truncated: bool,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

pub fn parse_reply(bytes: &[u8]) -> Result<ParsedReply, ParseError> {
    if bytes.len() < 12 {
        return Err(ParseError("shorter than a header"));
    }
    let word = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let flags = word(2);
    let mut at = 12;
    for _ in 0..word(4) {
        at = read_name(bytes, at)?.1 + 4;
    }
    let mut sections = [Vec::new(), Vec::new()];
    for (section, count) in sections.iter_mut().zip([word(6), word(8)]) {
        for _ in 0..count {
            let (name, after) = read_name(bytes, at)?;
            let fixed = bytes.get(after..after + 10).ok_or(ParseError("record cut short"))?;
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
            let length = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            let start = after + 10;
            let rdata = bytes.get(start..start + length).ok_or(ParseError("rdata cut short"))?;
            let data = match rtype {
                TYPE_A if length == 4 => RecordData::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
                TYPE_AAAA if length == 16 => {
                    RecordData::Aaaa(Ipv6Addr::from(<[u8; 16]>::try_from(rdata).expect("16 bytes")))
                }
                TYPE_CNAME => RecordData::Cname(read_name(bytes, start)?.0),
                TYPE_SRV if length >= 7 => RecordData::Srv {
                    priority: u16::from_be_bytes([rdata[0], rdata[1]]),
                    weight: u16::from_be_bytes([rdata[2], rdata[3]]),
                    port: u16::from_be_bytes([rdata[4], rdata[5]]),
                    target: read_name(bytes, start + 6)?.0,
                },
                TYPE_SOA => {
                    let (mname, next) = read_name(bytes, start)?;
                    let (rname, next) = read_name(bytes, next)?;
                    let n = |i: usize| {
                        bytes
                            .get(next + 4 * i..next + 4 * i + 4)
                            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                            .ok_or(ParseError("SOA cut short"))
                    };
                    RecordData::Soa {
                        mname,
                        rname,
                        serial: n(0)?,
                        refresh: n(1)?,
                        retry: n(2)?,
                        expire: n(3)?,
                        minimum: n(4)?,
                    }
                }
                _ => return Err(ParseError("a record type the reader does not know")),
            };
            section.push(Record { name, ttl, data });
            at = start + length;
        }
    }
    let [answers, authority] = sections;
    Ok(ParsedReply {
        id: word(0),
        rcode: (flags & 0xf) as u8,
        truncated: flags & 0x0200 != 0,
        authoritative: flags & 0x0400 != 0,
        answers,
        authority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_back_with_its_question() {
        let bytes = encode_query(7, "Web.Default.svc.cluster.local", TYPE_A);
        let query = parse_query(&bytes).unwrap();
        assert_eq!(query.id, 7);
        assert_eq!(query.name, "Web.Default.svc.cluster.local");
        assert_eq!((query.qtype, query.qclass), (TYPE_A, CLASS_IN));
        assert!(query.recursion_desired);
        assert_eq!(query.edns_udp_bytes, None);
    }

    #[test]
    fn an_opt_record_gives_the_clients_udp_size_and_is_answered_with_ours() {
        let mut bytes = encode_query(1, "a.b", TYPE_A);
        bytes[11] = 1; // one additional record
        bytes.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0]);
        let query = parse_query(&bytes).unwrap();
        assert_eq!(query.edns_udp_bytes, Some(4096));
        let reply = write_reply(&query, &Reply::default(), 4096);
        assert_eq!(
            u16::from_be_bytes([reply[10], reply[11]]),
            1,
            "the OPT record is in the reply"
        );
    }

    #[test]
    fn compressed_names_are_followed_and_forward_pointers_refused() {
        // Question "x" + pointer to offset 12 would point forward from 12: refused.
        let mut bytes = encode_query(1, "", TYPE_A);
        bytes.truncate(12);
        bytes.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(parse_query(&bytes).is_err());
        let mut answer = encode_query(2, "svc.local", TYPE_A);
        answer[2] |= 0x80;
        answer[7] = 1;
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
        let parsed = parse_reply(&answer).unwrap();
        assert_eq!(parsed.answers[0].name, "svc.local");
        assert_eq!(parsed.answers[0].data, RecordData::A(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn a_reply_round_trips_and_a_long_one_is_truncated() {
        let query = parse_query(&encode_query(9, "web.ns.svc.cluster.local", TYPE_SRV)).unwrap();
        let srv = |n: u16| Record {
            name: "_http._tcp.web.ns.svc.cluster.local".into(),
            ttl: 5,
            data: RecordData::Srv {
                priority: 0,
                weight: 100,
                port: 8000 + n,
                target: format!("10-0-0-{n}.web.ns.svc.cluster.local"),
            },
        };
        let reply = Reply {
            authoritative: true,
            answers: (0..3).map(srv).collect(),
            ..Reply::default()
        };
        let parsed = parse_reply(&write_reply(&query, &reply, CLASSIC_UDP_BYTES)).unwrap();
        assert_eq!((parsed.id, parsed.rcode, parsed.truncated), (9, NOERROR, false));
        assert_eq!(parsed.answers, reply.answers);
        let many = Reply {
            answers: (0..40).map(srv).collect(),
            ..Reply::default()
        };
        let parsed = parse_reply(&write_reply(&query, &many, CLASSIC_UDP_BYTES)).unwrap();
        assert!(parsed.truncated);
        assert!(parsed.answers.is_empty());
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        for bytes in [
            &[][..],
            &[1, 2, 3],
            &[0; 12],
            &[0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'a'],
        ] {
            assert!(parse_query(bytes).is_err(), "{bytes:?}");
        }
        assert_eq!(format_error(&[0xab, 0xcd, 1]).unwrap()[..4], [0xab, 0xcd, 0x80, 0x01]);
    }
}

//! The session script: what the fuzzer (or the proptest grammar) controls, and its byte format.

use super::super::input::{Encoder, Input};

/// The most steps one script runs.
pub const MAX_STEPS: usize = 256;
/// The longest raw server chunk in one step.
pub const MAX_RAW: usize = 1024;
/// The longest message body.
pub const MAX_BODY: usize = 300;

/// How the session is configured and what the application sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    /// 0 `None`, 1 `StartTlsRequired`, 2 `StartTlsOpportunistic`, 3 `Implicit`.
    pub tls: u8,
    /// 0 none, 1 password, 2 OAuth 2 token.
    pub credentials: u8,
    /// `Config::allow_insecure_auth`.
    pub allow_insecure_auth: bool,
    /// `Config::pipelining`.
    pub pipelining: bool,
    /// `Config::chunking`.
    pub chunking: bool,
    /// LMTP instead of SMTP.
    pub lmtp: bool,
    /// Reply caps of 128-byte lines, 8 lines, 512 bytes instead of the defaults.
    pub small_limits: bool,
    /// `max_buffered_body` of 16 bytes instead of the default (exercises back-pressure).
    pub small_body_buffer: bool,
    /// An overall deadline of 20 minutes.
    pub overall_deadline: bool,
    /// Complete a requested TLS handshake at once (otherwise only on a [`Step::Handshake`]).
    pub auto_handshake: bool,
    /// Port 465 as the diagnosis hint.
    pub port_465: bool,
    /// Declare the body size (`SIZE=`) and 8BITMIME.
    pub declare_size: bool,
    /// Declare `BODY=8BITMIME`.
    pub eight_bit: bool,
    /// Start the second message as soon as the first one's end of data is out, when the client takes it
    /// (`Client::accepts_mail`: transactions back to back, RFC 2920), instead of after the first verdict.
    pub back_to_back: bool,
    /// The two message bodies.
    pub bodies: [Vec<u8>; 2],
    /// Bytes per `write_body` call (0: all at once).
    pub write_size: u8,
}

/// What kind of reply an [`Step::Auto`] step renders for the command the server model says is next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The right positive reply (220, 250, 354, 334/235...).
    Positive,
    /// The same, as a multiline reply.
    Multiline,
    /// A 4yz reply.
    Transient,
    /// A 5yz reply.
    Permanent,
    /// 421: the server is closing the channel.
    Closing,
    /// A well-formed reply with a code that does not fit the command.
    Wrong,
    /// The positive reply with bare LF line endings.
    BareLf,
    /// Another 2yz code.
    OddPositive,
}

impl Kind {
    /// All kinds, in decoding order.
    pub const ALL: [Kind; 8] = [
        Kind::Positive,
        Kind::Multiline,
        Kind::Transient,
        Kind::Permanent,
        Kind::Closing,
        Kind::Wrong,
        Kind::BareLf,
        Kind::OddPositive,
    ];
}

/// How server bytes reach the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Keep the bytes and send them with the next delivered step (several replies in one read).
    pub hold: bool,
    /// Cut points: the bytes arrive in that many `receive` calls.
    pub cuts: Vec<u16>,
}

/// One step of a session script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The reply the server model finds appropriate for the next unanswered command, in the given kind.
    /// `flags` picks the EHLO extensions (bit 0 PIPELINING, 1 CHUNKING, 2 STARTTLS, 3 AUTH, 4-5 the mechanisms,
    /// 6 8BITMIME SMTPUTF8 SIZE, 7 ENHANCEDSTATUSCODES DSN) and the odd 2yz code.
    Auto {
        /// The kind of reply.
        kind: Kind,
        /// Extension and code choices.
        flags: u8,
        /// How it is delivered.
        delivery: Delivery,
    },
    /// Raw bytes from the server.
    Raw {
        /// The bytes.
        bytes: Vec<u8>,
        /// How they are delivered.
        delivery: Delivery,
    },
    /// A reply built from parts: any code 0-999, 1-4 lines of the given text.
    Reply {
        /// The code (may be invalid).
        code: u16,
        /// Number of lines.
        lines: u8,
        /// The text of each line.
        text: Vec<u8>,
        /// Bare LF line endings.
        bare_lf: bool,
        /// How it is delivered.
        delivery: Delivery,
    },
    /// A flood: 0 one endless line, 1 endless continuation lines, 2 one long complete line, 3 a long garbage line.
    Flood {
        /// The shape.
        shape: u8,
        /// Its length in bytes.
        len: u16,
    },
    /// The server closes the connection.
    Eof,
    /// Time passes; `handle_timeout` is called.
    Tick {
        /// Seconds.
        seconds: u16,
    },
    /// The clock jumps to `poll_timeout()` (after checking that one nanosecond earlier is a no-op).
    FireDeadline,
    /// The adapter completes a pending TLS handshake (or fails it).
    Handshake {
        /// Success.
        ok: bool,
    },
    /// The application asks for NOOP.
    Noop,
    /// The application asks to quit.
    Quit,
    /// The application misuses the API in a way that must fail and change nothing.
    Misuse {
        /// Which misuse.
        which: u8,
    },
}

fn delivery(input: &mut Input<'_>) -> Delivery {
    let b = input.u8();
    let n = usize::from(b >> 1) % 4;
    Delivery {
        hold: b & 1 == 1,
        cuts: (0..n).map(|_| input.u16()).collect(),
    }
}

fn encode_delivery(e: &mut Encoder, d: &Delivery) {
    assert!(d.cuts.len() < 4);
    e.u8(u8::from(d.hold) | (d.cuts.len() as u8) << 1);
    for &c in &d.cuts {
        e.u16(c);
    }
}

/// A whole script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The configuration.
    pub setup: Setup,
    /// The steps.
    pub steps: Vec<Step>,
}

impl Script {
    /// Decodes fuzzer bytes. Every byte string is a script.
    pub fn decode(data: &[u8]) -> Self {
        let mut input = Input::new(data);
        let tls = input.u8() % 4;
        let credentials = input.u8() % 3;
        let f = input.u8();
        let g = input.u8();
        let bodies = [
            input.bytes(MAX_BODY).to_vec(),
            input.bytes(MAX_BODY).to_vec(),
        ];
        let write_size = input.u8();
        let setup = Setup {
            tls,
            credentials,
            allow_insecure_auth: f & 1 != 0,
            pipelining: f & 2 != 0,
            chunking: f & 4 != 0,
            lmtp: f & 8 != 0,
            small_limits: f & 16 != 0,
            small_body_buffer: f & 32 != 0,
            overall_deadline: f & 64 != 0,
            auto_handshake: f & 128 != 0,
            port_465: g & 1 != 0,
            declare_size: g & 2 != 0,
            eight_bit: g & 4 != 0,
            back_to_back: g & 8 != 0,
            bodies,
            write_size,
        };
        let mut steps = Vec::new();
        while !input.is_empty() && steps.len() < MAX_STEPS {
            let step = match input.u8() % 16 {
                0..=5 => Step::Auto {
                    kind: Kind::ALL[input.below(8)],
                    flags: input.u8(),
                    delivery: delivery(&mut input),
                },
                6 => Step::Raw {
                    bytes: input.bytes(MAX_RAW).to_vec(),
                    delivery: delivery(&mut input),
                },
                7 => Step::Reply {
                    code: input.u16() % 1000,
                    lines: input.u8(),
                    text: input.bytes(64).to_vec(),
                    bare_lf: input.bool(),
                    delivery: delivery(&mut input),
                },
                8 => Step::Flood {
                    shape: input.u8(),
                    len: input.u16(),
                },
                9 => Step::Eof,
                10 => Step::Tick {
                    seconds: input.u16(),
                },
                11 => Step::FireDeadline,
                12 => Step::Handshake { ok: input.bool() },
                13 => Step::Noop,
                14 => Step::Quit,
                _ => Step::Misuse { which: input.u8() },
            };
            steps.push(step);
        }
        Self { setup, steps }
    }

    /// Encodes a script so that [`Script::decode`] gives it back (for seeds).
    pub fn encode(&self) -> Vec<u8> {
        let s = &self.setup;
        let mut e = Encoder::new();
        let f = u8::from(s.allow_insecure_auth)
            | u8::from(s.pipelining) << 1
            | u8::from(s.chunking) << 2
            | u8::from(s.lmtp) << 3
            | u8::from(s.small_limits) << 4
            | u8::from(s.small_body_buffer) << 5
            | u8::from(s.overall_deadline) << 6
            | u8::from(s.auto_handshake) << 7;
        let g = u8::from(s.port_465)
            | u8::from(s.declare_size) << 1
            | u8::from(s.eight_bit) << 2
            | u8::from(s.back_to_back) << 3;
        e.u8(s.tls).u8(s.credentials).u8(f).u8(g);
        e.bytes(MAX_BODY, &s.bodies[0])
            .bytes(MAX_BODY, &s.bodies[1])
            .u8(s.write_size);
        for step in &self.steps {
            match step {
                Step::Auto {
                    kind,
                    flags,
                    delivery,
                } => {
                    let k = Kind::ALL.iter().position(|x| x == kind).expect("a kind") as u8;
                    e.u8(0).u8(k).u8(*flags);
                    encode_delivery(&mut e, delivery);
                }
                Step::Raw { bytes, delivery } => {
                    e.u8(6).bytes(MAX_RAW, bytes);
                    encode_delivery(&mut e, delivery);
                }
                Step::Reply {
                    code,
                    lines,
                    text,
                    bare_lf,
                    delivery,
                } => {
                    e.u8(7).u16(*code).u8(*lines).bytes(64, text).bool(*bare_lf);
                    encode_delivery(&mut e, delivery);
                }
                Step::Flood { shape, len } => {
                    e.u8(8).u8(*shape).u16(*len);
                }
                Step::Eof => {
                    e.u8(9);
                }
                Step::Tick { seconds } => {
                    e.u8(10).u16(*seconds);
                }
                Step::FireDeadline => {
                    e.u8(11);
                }
                Step::Handshake { ok } => {
                    e.u8(12).bool(*ok);
                }
                Step::Noop => {
                    e.u8(13);
                }
                Step::Quit => {
                    e.u8(14);
                }
                Step::Misuse { which } => {
                    e.u8(15).u8(*which);
                }
            }
        }
        e.finish()
    }
}

impl Script {
    /// A compact, readable form (bytes escaped), for reproducing failures.
    pub fn describe(&self) -> String {
        let esc = |b: &[u8]| b.escape_ascii().to_string();
        let s = &self.setup;
        let mut out = format!(
            "tls={} credentials={} insecure_auth={} pipelining={} chunking={} lmtp={} small_limits={} \
             small_body_buffer={} overall_deadline={} auto_handshake={} port_465={} declare_size={} eight_bit={} \
             back_to_back={} write_size={}\nbody0 {:?}\nbody1 {:?}\n",
            s.tls,
            s.credentials,
            s.allow_insecure_auth,
            s.pipelining,
            s.chunking,
            s.lmtp,
            s.small_limits,
            s.small_body_buffer,
            s.overall_deadline,
            s.auto_handshake,
            s.port_465,
            s.declare_size,
            s.eight_bit,
            s.back_to_back,
            s.write_size,
            esc(&s.bodies[0]),
            esc(&s.bodies[1]),
        );
        for (i, step) in self.steps.iter().enumerate() {
            let line = match step {
                Step::Raw { bytes, delivery } => format!("Raw {:?} {delivery:?}", esc(bytes)),
                Step::Reply {
                    code,
                    lines,
                    text,
                    bare_lf,
                    delivery,
                } => format!(
                    "Reply {code:03} x{} {:?} bare_lf={bare_lf} {delivery:?}",
                    1 + lines % 4,
                    esc(text)
                ),
                other => format!("{other:?}"),
            };
            out.push_str(&format!("{i:3}: {line}\n"));
        }
        out
    }
}

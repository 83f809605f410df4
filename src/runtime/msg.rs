//! What callers, closing connections and the manager send the handler.

use crossbeam_channel::Sender;

use crate::addr::Addr;
use crate::core::info::Trimmed;
use crate::core::{DecayingSpec, Input, ReqSpec};
use crate::policy::tags::{PeerId, TagError};
use crate::runtime::request::ConnReq;
use crate::transport::stream::Stream;

pub(crate) type Stream0 = Box<dyn Stream>;

/// What callers (and closing connections) ask of the handler, in the
/// order they were sent.
pub(crate) enum Msg {
    /// A Core input.
    Input(Input<Stream0>),
    /// A caller's request, with the handle the caller keeps.
    Connect(ConnReq, ReqSpec),
    /// Apply `input` (if any) and answer, once the batch is published,
    /// whether `ask` is protected (false when nobody is asked).
    Barrier {
        input: Option<Input<Stream0>>,
        ask: Option<PeerId>,
        reply: Sender<bool>,
    },
    /// Trim now (one trim for every such message in a batch) and answer
    /// with what it closed once the batch is published.
    Trim(Sender<Trimmed>),
    /// Register a decaying tag and answer, once the batch is published,
    /// whether it was.
    Register(DecayingSpec, Sender<Result<(), TagError>>),
    /// The other threads run: start dialing, anchors first.
    Start(Vec<Addr>),
    /// Shut down.
    Stop,
}

/// A connection a listener thread accepted.
pub(crate) struct Accepted {
    pub(crate) stream: Stream0,
    pub(crate) remote: Addr,
}

// Package progress is the vocabulary between the builder and whatever shows
// a build to its user: typed events (a step started, printed a line, was
// cached, finished or failed; a warning; bytes of an export or a push and
// where the image went) and the Sink that receives them.
//
// The builder emits events and knows nothing of terminals or formats; the
// command line (cmd/strata) renders them as BuildKit's plain text, a live
// terminal view or JSON lines. The package imports nothing of Strata, so
// either side can use it without the other.
//
// A vertex is BuildKit's word for a step of the build graph: a FROM, a RUN,
// a COPY, and also an export or a push. Its events carry its ID; the
// renderers number vertexes in the order they appear.
package progress

import "time"

// Event is one of the types below; nothing else implements it.
type Event interface{ event() }

// Sink receives a build's events. The builder calls Event from the
// goroutines of stages that run concurrently, so a Sink must be safe for
// concurrent use; and Event is on the build's path, so it must not block
// for long.
type Sink interface {
	Event(Event)
}

// Func adapts a function to a Sink.
type Func func(Event)

// Event calls f.
func (f Func) Event(e Event) { f(e) }

// Discard is a Sink that drops every event.
var Discard Sink = Func(func(Event) {})

// VertexStarted: a vertex began. Its ID names it in the events that follow;
// an ID is unique among the vertexes of a stream that have not finished, so
// a VertexStarted with the ID of a finished vertex (a second build in one
// stream numbers its steps afresh) starts a new vertex.
type VertexStarted struct {
	ID string
	// Name is how BuildKit names the step: "[2/5] RUN make", or with
	// several stages "[stage-1 2/5] RUN make"; "exporting to image".
	Name string
	// Started is when its work began; for a FROM that is before the base
	// was resolved, which is when the event is sent.
	Started time.Time
}

// Stream is where a step's line was written.
type Stream string

// The streams of a RUN step.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// VertexLog is one line a step printed, without its newline. LogWriter
// makes it: at most MaxLine bytes, only what follows its last carriage
// return, control characters spelled out (see Inert), so a renderer can
// print it as it is.
type VertexLog struct {
	ID     string
	Stream Stream
	Line   string
}

// VertexCached: the vertex's result came from the build cache; it is
// finished.
type VertexCached struct{ ID string }

// VertexDone: the vertex finished after running for Duration.
type VertexDone struct {
	ID       string
	Duration time.Duration
}

// VertexError: the vertex failed after Duration; it is finished.
type VertexError struct {
	ID       string
	Message  string
	Duration time.Duration
	// Canceled says the build's cancellation stopped it (Ctrl-C, or a
	// sibling stage's failure) rather than a failure of its own.
	Canceled bool
}

// Warning is a problem the build tolerates: a Dockerfile lint (File, Line
// and Rule set) or one of the sandbox's (only Message).
type Warning struct {
	File    string
	Line    int
	Rule    string
	Message string
}

// Transfer reports bytes of what a vertex writes or pushes, named by Name
// ("writing archive", "pushing registry.example.com/app:1"). Total is 0
// when unknown. Done is set on the last event of the transfer.
type Transfer struct {
	ID      string
	Name    string
	Current int64
	Total   int64
	Done    bool
}

// Pushed: the image is in the registry as Ref (as the user named it) with
// manifest digest Digest ("sha256:...").
type Pushed struct {
	ID     string
	Ref    string
	Digest string
}

// Exported: the image was written as an output of type Type (oci, docker,
// local, ...) to Dest, a path or "-" for standard output.
type Exported struct {
	ID   string
	Type string
	Dest string
}

// CacheMiss says, for --explain-cache, why the step ID missed the cache:
// one line per input that differs from the closest entry.
type CacheMiss struct {
	ID      string
	Reasons []string
}

// Message is a line of the tool's own about the build as a whole, no
// step's ("check-repro: build 1 of 2").
type Message struct{ Text string }

func (VertexStarted) event() {}
func (VertexLog) event()     {}
func (VertexCached) event()  {}
func (VertexDone) event()    {}
func (VertexError) event()   {}
func (Warning) event()       {}
func (Transfer) event()      {}
func (Pushed) event()        {}
func (Exported) event()      {}
func (Message) event()       {}
func (CacheMiss) event()     {}

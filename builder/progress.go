package builder

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/progress"
)

// reporter sends a build's events (package progress) to Options.Progress.
// It names the vertexes "1", "2", ... in the order they start; how they
// show is the caller's business.
type reporter struct {
	sink progress.Sink
	mu   sync.Mutex
	n    int
	// shared, for the builds of BuildPlatforms, reports each warning once.
	shared *siblings
}

func newReporter(s progress.Sink) *reporter {
	if s == nil {
		s = progress.Discard
	}
	return &reporter{sink: s}
}

// warnings sends the Dockerfile's lint warnings, first, so the stream of
// a build is all a renderer needs.
func (r *reporter) warnings(g *dockerfile.Graph) {
	for _, w := range g.Warnings {
		ev := progress.Warning{File: g.File, Line: w.Line, Rule: w.Rule, Message: w.Message}
		if r.shared != nil && !r.shared.firstWarning(ev) {
			continue
		}
		r.sink.Event(ev)
	}
}

// vertex is one step as the events see it.
type vertex struct {
	sink  progress.Sink
	id    string
	start time.Time
}

func (r *reporter) vertex(name string) *vertex { return r.vertexSince(name, time.Now()) }

// vertexSince starts a step whose work began at start.
func (r *reporter) vertexSince(name string, start time.Time) *vertex {
	// Numbered and sent under one lock: the IDs of concurrent stages'
	// steps then come in order, as BuildKit's plain output numbers them.
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	v := &vertex{sink: r.sink, id: strconv.Itoa(r.n), start: start}
	r.sink.Event(progress.VertexStarted{ID: v.id, Name: name, Started: start})
	return v
}

func (v *vertex) cached() { v.sink.Event(progress.VertexCached{ID: v.id}) }

func (v *vertex) done() {
	v.sink.Event(progress.VertexDone{ID: v.id, Duration: time.Since(v.start)})
}

func (v *vertex) fail(err error) {
	v.sink.Event(progress.VertexError{ID: v.id, Message: err.Error(), Duration: time.Since(v.start),
		Canceled: errors.Is(err, context.Canceled)})
}

// finish ends the vertex as err says.
func (v *vertex) finish(err error) {
	if err != nil {
		v.fail(err)
		return
	}
	v.done()
}

// output is a writer for one of a step's streams; Flush it when the step
// ends.
func (v *vertex) output(s progress.Stream) *progress.LogWriter {
	return progress.NewLogWriter(v.sink, v.id, s)
}

// meterStep is the fewest bytes between two Transfer events: a bar needs a
// few dozen updates, not one per write, and the plain and JSON streams
// stay short.
const meterStep = 1 << 20

// meter reports the bytes of one transfer of a vertex.
type meter struct {
	v              *vertex
	name           string
	current, total int64
	sent           int64 // current at the last event
	started        bool
}

func (v *vertex) meter(name string) *meter { return &meter{v: v, name: name} }

// Write counts bytes written through it (an io.MultiWriter beside the
// destination).
func (m *meter) Write(b []byte) (int, error) {
	m.set(m.current+int64(len(b)), m.total)
	return len(b), nil
}

// set records the bytes done of total (0: unknown), sending an event when
// the transfer starts and then every max(meterStep, total/50) bytes.
func (m *meter) set(current, total int64) {
	m.current, m.total = current, total
	step := max(int64(meterStep), total/50)
	if m.started && current-m.sent < step {
		return
	}
	m.started, m.sent = true, current
	m.v.sink.Event(progress.Transfer{ID: m.v.id, Name: m.name, Current: current, Total: total})
}

// done sends the transfer's last event.
func (m *meter) done() {
	m.v.sink.Event(progress.Transfer{ID: m.v.id, Name: m.name, Current: m.current, Total: m.total, Done: true})
}

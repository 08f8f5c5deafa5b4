package builder

import (
	"fmt"
	"io"
	"sync"

	"github.com/strata-build/strata/progress"
)

// textSink writes the build's events to w as BuildKit's plain progress
// ("#N name", "#N CACHED", "#N DONE 0.4s", "#N ERROR: ..."), which the
// builder's tests read (parseProgress, strings.Count(out, "CACHED")). The
// command line has the real renderers; the vertex IDs of one build are its
// step numbers, so this one prints them as they are.
func textSink(w io.Writer) progress.Sink {
	var mu sync.Mutex
	return progress.Func(func(e progress.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e := e.(type) {
		case progress.VertexStarted:
			fmt.Fprintf(w, "#%s %s\n", e.ID, e.Name)
		case progress.VertexLog:
			fmt.Fprintf(w, "#%s %s\n", e.ID, e.Line)
		case progress.VertexCached:
			fmt.Fprintf(w, "#%s CACHED\n", e.ID)
		case progress.VertexDone:
			fmt.Fprintf(w, "#%s DONE %.1fs\n", e.ID, e.Duration.Seconds())
		case progress.VertexError:
			fmt.Fprintf(w, "#%s ERROR: %s\n", e.ID, e.Message)
		case progress.Warning:
			fmt.Fprintf(w, "WARN: %s:%d: %s: %s\n", e.File, e.Line, e.Rule, e.Message)
		}
	})
}

// recorder keeps the events it receives.
type recorder struct {
	mu     sync.Mutex
	events []progress.Event
}

func (r *recorder) Event(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) all() []progress.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]progress.Event(nil), r.events...)
}

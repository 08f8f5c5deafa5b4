package builder

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress writes BuildKit's plain progress format: one "#N name" line
// when a step starts, its output prefixed with "#N ", then "#N CACHED" or
// "#N DONE 0.4s" (or "#N ERROR: ..."). On a terminal (live) the same lines
// scroll above a status line that shows the running step and the time.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	n       int
	live    bool
	current string
	start   time.Time
	stop    chan struct{}
	stopped chan struct{}
}

type vertex struct {
	p     *progress
	n     int
	start time.Time
}

func newProgress(w io.Writer, live bool) *progress {
	if w == nil {
		w, live = io.Discard, false
	}
	p := &progress{w: w, live: live, start: time.Now()}
	if live {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.tick()
	}
	return p
}

// clearLine erases the status line on a terminal.
const clearLine = "\r\033[K"

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live {
		fmt.Fprint(p.w, clearLine)
	}
	fmt.Fprintf(p.w, format, args...)
	if p.live {
		p.status()
	}
}

// statusWidth bounds the status line: a line that wraps on the terminal
// could not be erased in place.
const statusWidth = 60

// status draws the status line; p.mu is held.
func (p *progress) status() {
	cur := p.current
	if len(cur) > statusWidth {
		cur = cur[:statusWidth-3] + "..."
	}
	fmt.Fprintf(p.w, "[+] Building %.1fs %s", time.Since(p.start).Seconds(), cur)
}

// tick redraws the status line so the time runs while a step does.
func (p *progress) tick() {
	defer close(p.stopped)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			fmt.Fprint(p.w, clearLine)
			p.status()
			p.mu.Unlock()
		}
	}
}

// close ends the live view with a last line.
func (p *progress) close() {
	if !p.live {
		return
	}
	close(p.stop)
	<-p.stopped
	fmt.Fprintf(p.w, "%s[+] Building %.1fs (%d steps) FINISHED\n", clearLine, time.Since(p.start).Seconds(), p.n)
}

func (p *progress) vertex(name string) *vertex { return p.vertexSince(name, time.Now()) }

// vertexSince starts a step whose work began at start.
func (p *progress) vertexSince(name string, start time.Time) *vertex {
	p.mu.Lock()
	p.n++
	v := &vertex{p: p, n: p.n, start: start}
	p.current = name
	p.mu.Unlock()
	p.printf("#%d %s\n", v.n, name)
	return v
}

func (v *vertex) cached() { v.p.printf("#%d CACHED\n", v.n) }

func (v *vertex) done() {
	v.p.printf("#%d DONE %.1fs\n", v.n, time.Since(v.start).Seconds())
}

func (v *vertex) fail(err error) { v.p.printf("#%d ERROR: %v\n", v.n, err) }

func (v *vertex) log(format string, args ...any) {
	v.p.printf("#%d "+format+"\n", append([]any{v.n}, args...)...)
}

// output is a writer for a step's output that prefixes each line.
func (v *vertex) output() *lineWriter { return &lineWriter{v: v} }

// maxLine bounds a line of a step's output held in memory: a step writing
// gigabytes without a newline must not exhaust the builder.
const maxLine = 64 << 10

type lineWriter struct {
	v   *vertex
	buf []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		// A line longer than maxLine is shown in pieces of maxLine bytes.
		take := min(i, maxLine-len(l.buf))
		l.buf = append(l.buf, b[:take]...)
		switch {
		case take == i && i < len(b): // the line ends here
			l.emit()
			b = b[i+1:]
		case len(l.buf) == maxLine:
			l.emit()
			b = b[take:]
		default:
			b = b[take:]
		}
	}
	return n, nil
}

// emit prints the buffered line as a terminal would show it: only what
// follows its last carriage return (a progress bar's final state), with
// other control characters (escape sequences that would move the cursor or
// retitle the operator's terminal) made visible.
func (l *lineWriter) emit() {
	line := l.buf
	if i := bytes.LastIndexByte(line, '\r'); i >= 0 {
		line = line[i+1:]
	}
	l.v.log("%s", visible(line))
	l.buf = l.buf[:0]
}

func visible(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			fmt.Fprintf(&sb, "\\x%02x", c)
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// flush prints a last line that had no newline.
func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
}

package progress

import (
	"bytes"
	"fmt"
	"strings"
)

// MaxLine bounds a line of a step's output held in memory: a step writing
// gigabytes without a newline must not exhaust the builder. A longer line
// is sent in pieces of MaxLine bytes.
const MaxLine = 64 << 10

// LogWriter turns a step's output stream into VertexLog events, a line at
// a time. A Write may end mid-line; Flush sends what is left. It is used
// by one writer at a time (one per stream of a step).
type LogWriter struct {
	sink   Sink
	id     string
	stream Stream
	buf    []byte
}

// NewLogWriter writes the lines of vertex id's stream to s.
func NewLogWriter(s Sink, id string, stream Stream) *LogWriter {
	return &LogWriter{sink: s, id: id, stream: stream}
}

// Write never fails: the step's output must not stop because of how it
// is shown.
func (l *LogWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		take := min(i, MaxLine-len(l.buf))
		l.buf = append(l.buf, b[:take]...)
		switch {
		case take == i && i < len(b): // the line ends here
			l.emit()
			b = b[i+1:]
		case len(l.buf) == MaxLine:
			l.emit()
			b = b[take:]
		default:
			b = b[take:]
		}
	}
	return n, nil
}

// Flush sends a last line that had no newline.
func (l *LogWriter) Flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
}

// emit sends the buffered line as a terminal would show it: only what
// follows its last carriage return (a progress bar's final state), with
// other control characters made visible.
func (l *LogWriter) emit() {
	line := l.buf
	if i := bytes.LastIndexByte(line, '\r'); i >= 0 {
		line = line[i+1:]
	}
	l.sink.Event(VertexLog{ID: l.id, Stream: l.stream, Line: Inert(string(line))})
	l.buf = l.buf[:0]
}

// Inert spells out the control characters of s but tabs as \xNN: escape
// sequences in a step's output (or a Dockerfile's text) would otherwise
// move the cursor or retitle the operator's terminal.
func Inert(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if isControl(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; isControl(c) {
			fmt.Fprintf(&sb, "\\x%02x", c)
		} else {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

func isControl(c byte) bool { return c < 0x20 && c != '\t' || c == 0x7f }

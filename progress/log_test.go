package progress

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// lines records the lines a LogWriter sends.
type lines struct{ got []VertexLog }

func (l *lines) Event(e Event) { l.got = append(l.got, e.(VertexLog)) }

// TestLogLinesAreBoundedAndInert: a step's output is sent a line at a time, a line no
// longer than MaxLine (a step writing without newlines cannot fill the builder's memory),
// a progress bar's carriage returns collapsed, escape sequences made visible.
func TestLogLinesAreBoundedAndInert(t *testing.T) {
	var rec lines
	w := NewLogWriter(&rec, "3", Stderr)
	w.Write([]byte("\x1b]0;pwned\x07title\n10%\r50%\r100%\n"))
	big := bytes.Repeat([]byte("z"), 3*MaxLine+5)
	for i := 0; i < len(big); i += 1000 {
		w.Write(big[i:min(i+1000, len(big))])
	}
	w.Write([]byte("\ntab\tkept\x7f"))
	w.Flush()
	w.Flush() // nothing left: no empty line
	want := []string{`\x1b]0;pwned\x07title`, "100%"}
	for range 3 {
		want = append(want, strings.Repeat("z", MaxLine))
	}
	want = append(want, "zzzzz", `tab	kept\x7f`)
	var got []string
	for _, l := range rec.got {
		if l.ID != "3" || l.Stream != Stderr {
			t.Errorf("line %+v, want vertex 3's stderr", l)
		}
		got = append(got, l.Line)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines (lengths %v) differ from the expected (lengths %v)", lengths(got), lengths(want))
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] && len(got[i]) < 100 {
				t.Errorf("line %d: %q, want %q", i, got[i], want[i])
			}
		}
	}
}

func lengths(ss []string) []int {
	var n []int
	for _, s := range ss {
		n = append(n, len(s))
	}
	return n
}

func TestInert(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":          "plain text",
		"tab\there":           "tab\there",
		"\x1b[2J\x1b[H":       `\x1b[2J\x1b[H`,
		"bell\a del\x7f nl\n": `bell\x07 del\x7f nl\x0a`,
		"ünïcode ✓":           "ünïcode ✓",
	} {
		if got := Inert(in); got != want {
			t.Errorf("Inert(%q) = %q, want %q", in, got, want)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata/progress"
)

// t0 is when the recorded builds begin.
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const ms = time.Millisecond

const pushID = "export:registry:localhost:5000/app:1"

// recorded is a build as the builder and the push send it: a lint
// warning, a FROM, a cached COPY, a RUN printing two lines, a sandbox
// warning, then a push. Each event comes at its time on the display's clock.
var recorded = []struct {
	at time.Duration
	e  progress.Event
}{
	{0, progress.Warning{File: "Dockerfile", Line: 3, Rule: "DuplicateStageName", Message: `Duplicate stage name "a", stage names should be unique`}},
	{1200 * ms, progress.VertexStarted{ID: "1", Name: "[1/3] FROM busybox:latest", Started: at(0)}},
	{1200 * ms, progress.VertexDone{ID: "1", Duration: 1200 * ms}},
	{1200 * ms, progress.VertexStarted{ID: "2", Name: "[2/3] COPY app /app", Started: at(1200 * ms)}},
	{1300 * ms, progress.VertexCached{ID: "2"}},
	{1300 * ms, progress.VertexStarted{ID: "3", Name: "[3/3] RUN make", Started: at(1300 * ms)}},
	{1500 * ms, progress.VertexLog{ID: "3", Stream: progress.Stdout, Line: "cc -o app main.c"}},
	{1600 * ms, progress.VertexLog{ID: "3", Stream: progress.Stderr, Line: "main.c:3:\twarning: unused variable 'x' <here> & there"}},
	{3400 * ms, progress.VertexDone{ID: "3", Duration: 2100 * ms}},
	{3400 * ms, progress.Warning{Message: "overlayfs unavailable (test); RUN steps will run on a copy of their base, which is slower"}},
	{3400 * ms, progress.VertexStarted{ID: pushID, Name: "exporting to image", Started: at(3400 * ms)}},
	{3500 * ms, progress.Transfer{ID: pushID, Name: "pushing localhost:5000/app:1", Current: 32768, Total: 3400000}},
	{3800 * ms, progress.Transfer{ID: pushID, Name: "pushing localhost:5000/app:1", Current: 1234567, Total: 3400000}},
	{4100 * ms, progress.Transfer{ID: pushID, Name: "pushing localhost:5000/app:1", Current: 3400000, Total: 3400000, Done: true}},
	{4200 * ms, progress.Pushed{ID: pushID, Ref: "localhost:5000/app:1", Digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{4200 * ms, progress.VertexDone{ID: pushID, Duration: 800 * ms}},
}

// failing is a build whose RUN fails after printing, then a second build
// in the same stream (as --check-repro runs two) whose IDs start again.
var failing = []progress.Event{
	progress.Message{Text: "check-repro: build 1 of 2, in a scratch store"},
	progress.VertexStarted{ID: "1", Name: "[1/2] FROM scratch", Started: at(0)},
	progress.VertexDone{ID: "1", Duration: 0},
	progress.VertexStarted{ID: "2", Name: "[2/2] RUN make", Started: at(100 * ms)},
	progress.VertexLog{ID: "2", Stream: progress.Stderr, Line: "make: *** No rule to make target 'all'.  Stop."},
	progress.VertexError{ID: "2", Message: "exit code 2", Duration: 300 * ms},
	progress.Message{Text: "check-repro: build 2 of 2, in a scratch store, cache off"},
	progress.VertexStarted{ID: "1", Name: "[1/2] FROM scratch", Started: at(500 * ms)},
	progress.VertexError{ID: "1", Message: "interrupted", Duration: 100 * ms, Canceled: true},
}

func recordedEvents() []progress.Event {
	var es []progress.Event
	for _, r := range recorded {
		es = append(es, r.e)
	}
	return es
}

func send(s progress.Sink, events []progress.Event) {
	for _, e := range events {
		s.Event(e)
	}
}

func checkGolden(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n--- got\n%s\n--- want\n%s", what, got, want)
	}
}

func TestPlainDisplay(t *testing.T) {
	var out bytes.Buffer
	d := newPlainDisplay(&out)
	send(d, recordedEvents())
	d.Close(nil)
	checkGolden(t, "plain", out.String(), `WARN: Dockerfile:3: DuplicateStageName: Duplicate stage name "a", stage names should be unique
#1 [1/3] FROM busybox:latest
#1 DONE 1.2s
#2 [2/3] COPY app /app
#2 CACHED
#3 [3/3] RUN make
#3 cc -o app main.c
#3 main.c:3:	warning: unused variable 'x' <here> & there
#3 DONE 2.1s
strata: warning: overlayfs unavailable (test); RUN steps will run on a copy of their base, which is slower
#4 exporting to image
#4 pushing localhost:5000/app:1 3.4MB / 3.4MB done
#4 pushed localhost:5000/app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
#4 DONE 0.8s
`)
	out.Reset()
	d = newPlainDisplay(&out)
	send(d, failing)
	d.Close(errors.New("Dockerfile:2: step 2/2 RUN make: exit code 2"))
	checkGolden(t, "plain, failing", out.String(), `check-repro: build 1 of 2, in a scratch store
#1 [1/2] FROM scratch
#1 DONE 0.0s
#2 [2/2] RUN make
#2 make: *** No rule to make target 'all'.  Stop.
#2 ERROR: exit code 2
check-repro: build 2 of 2, in a scratch store, cache off
#3 [1/2] FROM scratch
#3 ERROR: interrupted
`)
}

// fakeTerminal is the tty display's clock and size.
type fakeTerminal struct {
	now           time.Time
	width, height int
}

func newFakeTTY(out *bytes.Buffer, term *fakeTerminal) *ttyDisplay {
	return newTTYDisplay(out, func() time.Time { return term.now }, func() (int, int) { return term.width, term.height })
}

// screen plays what a display wrote on a terminal of unbounded height:
// text, newlines, and the sequences the live view uses (cursor up, erase
// to the end of the line or of the screen). It is the screen a user is
// left with, so a frame drawn over a longer one shows no leftovers.
func screen(t *testing.T, out string) string {
	t.Helper()
	var rows [][]rune
	row, col := 0, 0
	put := func(r rune) {
		for len(rows) <= row {
			rows = append(rows, nil)
		}
		for len(rows[row]) < col {
			rows[row] = append(rows[row], ' ')
		}
		if col < len(rows[row]) {
			rows[row][col] = r
		} else {
			rows[row] = append(rows[row], r)
		}
		col++
	}
	for i := 0; i < len(out); {
		switch {
		case strings.HasPrefix(out[i:], "\x1b["):
			j := i + 2
			for j < len(out) && out[j] >= '0' && out[j] <= '9' {
				j++
			}
			n := 1
			if j > i+2 {
				fmt.Sscan(out[i+2:j], &n)
			}
			switch out[j] {
			case 'A':
				row = max(row-n, 0)
			case 'K':
				if row < len(rows) && col < len(rows[row]) {
					rows[row] = rows[row][:col]
				}
			case 'J':
				if row < len(rows) {
					if col < len(rows[row]) {
						rows[row] = rows[row][:col]
					}
					rows = rows[:row+1]
				}
			default:
				t.Fatalf("unexpected escape sequence %q", out[i:j+1])
			}
			i = j + 1
		case out[i] == '\n':
			row, col = row+1, 0
			i++
		case out[i] == '\r':
			col = 0
			i++
		default:
			r, size := []rune(out[i:])[0], len(string([]rune(out[i:])[0]))
			if r < 0x20 {
				t.Fatalf("control character %q in the output", r)
			}
			put(r)
			i += size
		}
	}
	var lines []string
	for _, r := range rows {
		lines = append(lines, string(r))
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n") + "\n"
}

// TestTTYDisplay draws the recorded build at three moments on a terminal
// 60 columns wide and checks what the screen shows each time and at the
// end; the third moment on a terminal 6 rows high.
func TestTTYDisplay(t *testing.T) {
	var out bytes.Buffer
	term := &fakeTerminal{now: t0, width: 60, height: 24}
	d := newFakeTTY(&out, term)
	var screens []string
	for i, r := range recorded {
		term.now = at(r.at)
		d.Event(r.e)
		if i == 1 || i == 7 || i == 12 {
			if i == 12 {
				term.height = 6
			}
			term.now = term.now.Add(100 * ms)
			d.draw()
			screens = append(screens, screen(t, out.String()))
		}
	}
	term.now = at(4300 * ms)
	d.Close(nil)
	checkGolden(t, "a running FROM", screens[0], `[+] Building 1.3s (0/1)
 => [1/3] FROM busybox:latest                          1.3s
`)
	checkGolden(t, "a running RUN", screens[1], `[+] Building 1.7s (2/3)
 => [1/3] FROM busybox:latest                          1.2s
 => CACHED [2/3] COPY app /app                         0.0s
 => [3/3] RUN make                                     0.4s
 => => # cc -o app main.c
 => => # main.c:3:       warning: unused variable 'x' <h...
`)
	// Six rows: the oldest finished step makes room; the RUN is collapsed.
	checkGolden(t, "a push, on a short terminal", screens[2], `[+] Building 3.9s (3/4)
 => CACHED [2/3] COPY app /app                         0.0s
 => [3/3] RUN make                                     2.1s
 => exporting to image                                 0.5s
 => => pushing localhost:5000/app:1 1.235MB / 3.4MB    0.4s
`)
	checkGolden(t, "the end", screen(t, out.String()), `[+] Building 4.3s (4/4) FINISHED
 => [1/3] FROM busybox:latest                          1.2s
 => CACHED [2/3] COPY app /app                         0.0s
 => [3/3] RUN make                                     2.1s
 => exporting to image                                 0.8s
 => => pushing localhost:5000/app:1 3.4MB / 3.4MB      0.6s
 => => pushed localhost:5000/app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
2 warnings found:
 - Dockerfile:3: DuplicateStageName: Duplicate stage name "a", stage names should be unique
 - overlayfs unavailable (test); RUN steps will run on a copy of their base, which is slower
`)
}

// TestTTYDisplayFailure: a failed build ends FAILED, with the failed
// step's output after the view; an interrupted one CANCELED, the step it
// stopped marked so. Messages print above the view.
func TestTTYDisplayFailure(t *testing.T) {
	var out bytes.Buffer
	term := &fakeTerminal{now: t0, width: 60, height: 24}
	d := newFakeTTY(&out, term)
	send(d, failing[:6])
	term.now = at(400 * ms)
	d.draw()
	send(d, failing[6:])
	term.now = at(700 * ms)
	d.Close(fmt.Errorf("Dockerfile:2: step 2/2 RUN make: %w", errors.New("exit code 2")))
	checkGolden(t, "failed", screen(t, out.String()), `check-repro: build 1 of 2, in a scratch store
check-repro: build 2 of 2, in a scratch store, cache off
[+] Building 0.7s (3/3) FAILED
 => [1/2] FROM scratch                                 0.0s
 => ERROR [2/2] RUN make                               0.3s
 => CANCELED [1/2] FROM scratch                        0.1s
------
 > [2/2] RUN make:
make: *** No rule to make target 'all'.  Stop.
------
`)

	out.Reset()
	term.now = t0
	d = newFakeTTY(&out, term)
	send(d, failing[1:4])
	d.Event(progress.VertexStarted{ID: "3", Name: "[2/2] RUN echo \x1b[2J\nrm", Started: at(100 * ms)})
	term.now = at(1500 * ms)
	d.Close(fmt.Errorf("step 2/2: %w", context.Canceled))
	checkGolden(t, "canceled", screen(t, out.String()), `[+] Building 1.5s (1/3) CANCELED
 => [1/2] FROM scratch                                 0.0s
 => CANCELED [2/2] RUN make                            1.4s
 => CANCELED [2/2] RUN echo \x1b[2J\x0arm              1.4s
`)
}

// TestTTYRedraw: each frame moves the cursor up over the last and erases
// what a longer last frame leaves below it.
func TestTTYRedraw(t *testing.T) {
	var out bytes.Buffer
	term := &fakeTerminal{now: t0, width: 30, height: 24}
	d := newFakeTTY(&out, term)
	d.draw() // nothing started: nothing drawn
	d.Event(progress.VertexStarted{ID: "1", Name: "[1/1] RUN x", Started: t0})
	d.Event(progress.VertexLog{ID: "1", Line: "out"})
	d.draw()
	d.Event(progress.VertexDone{ID: "1", Duration: 500 * ms})
	term.now = at(time.Second)
	d.draw()
	want := "[+] Building 0.0s (0/1)\x1b[K\n => [1/1] RUN x          0.0s\x1b[K\n => => # out\x1b[K\n" +
		"\x1b[3A[+] Building 1.0s (1/1)\x1b[K\n => [1/1] RUN x          0.5s\x1b[K\n\x1b[J"
	if got := out.String(); got != want {
		t.Errorf("output\n%q, want\n%q", got, want)
	}
}

// TestJSONDisplay: an object per line, of the fields docs/progress.md
// lists, which parse back to the events.
func TestJSONDisplay(t *testing.T) {
	var out bytes.Buffer
	d := newJSONDisplay(&out)
	events := append(recordedEvents(), failing...)
	send(d, events)
	d.Close(nil)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(events), out.String())
	}
	for i, line := range lines {
		e, err := parseJSONEvent([]byte(line))
		if err != nil {
			t.Errorf("line %d %s: %v", i+1, line, err)
			continue
		}
		if !reflect.DeepEqual(e, events[i]) {
			t.Errorf("line %d %s parses to %#v, want %#v", i+1, line, e, events[i])
		}
	}
	checkGolden(t, "rawjson", strings.Join(lines[:3], "\n")+"\n"+lines[6]+"\n"+lines[13], `{"type":"warning","file":"Dockerfile","line":3,"rule":"DuplicateStageName","message":"Duplicate stage name \"a\", stage names should be unique"}
{"type":"vertex_started","id":"1","name":"[1/3] FROM busybox:latest","started":"2025-01-02T03:04:05Z"}
{"type":"vertex_done","id":"1","duration_ns":1200000000}
{"type":"vertex_log","id":"3","stream":"stdout","line":"cc -o app main.c"}
{"type":"transfer","id":"export:registry:localhost:5000/app:1","name":"pushing localhost:5000/app:1","current":3400000,"total":3400000,"done":true}`)
}

// parseJSONEvent reads a line of --progress=rawjson as a program would,
// refusing a field docs/progress.md does not list.
func parseJSONEvent(line []byte) (progress.Event, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return nil, err
	}
	decode := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	}
	var err error
	switch head.Type {
	case "vertex_started":
		var j jsonVertexStarted
		err = decode(&j)
		return progress.VertexStarted{ID: j.ID, Name: j.Name, Started: j.Started}, err
	case "vertex_log":
		var j jsonVertexLog
		err = decode(&j)
		return progress.VertexLog{ID: j.ID, Stream: progress.Stream(j.Stream), Line: j.Line}, err
	case "vertex_cached":
		var j jsonVertexCached
		err = decode(&j)
		return progress.VertexCached{ID: j.ID}, err
	case "vertex_done":
		var j jsonVertexDone
		err = decode(&j)
		return progress.VertexDone{ID: j.ID, Duration: time.Duration(j.DurationNS)}, err
	case "vertex_error":
		var j jsonVertexError
		err = decode(&j)
		return progress.VertexError{ID: j.ID, Message: j.Message, Duration: time.Duration(j.DurationNS), Canceled: j.Canceled}, err
	case "warning":
		var j jsonWarning
		err = decode(&j)
		return progress.Warning{File: j.File, Line: j.Line, Rule: j.Rule, Message: j.Message}, err
	case "transfer":
		var j jsonTransfer
		err = decode(&j)
		return progress.Transfer{ID: j.ID, Name: j.Name, Current: j.Current, Total: j.Total, Done: j.Done}, err
	case "pushed":
		var j jsonPushed
		err = decode(&j)
		return progress.Pushed{ID: j.ID, Ref: j.Ref, Digest: j.Digest}, err
	case "exported":
		var j jsonExported
		err = decode(&j)
		return progress.Exported{ID: j.ID, Type: j.Output, Dest: j.Dest}, err
	case "message":
		var j jsonMessage
		err = decode(&j)
		return progress.Message{Text: j.Text}, err
	case "cache_miss":
		var j jsonCacheMiss
		err = decode(&j)
		return progress.CacheMiss{ID: j.ID, Reasons: j.Reasons}, err
	}
	return nil, fmt.Errorf("unknown type %q", head.Type)
}

// TestJSONCoversEveryEvent: the exported event of an export and every
// other event type have a JSON form.
func TestJSONCoversEveryEvent(t *testing.T) {
	for _, e := range []progress.Event{progress.VertexStarted{}, progress.VertexLog{}, progress.VertexCached{},
		progress.VertexDone{}, progress.VertexError{}, progress.Warning{}, progress.Transfer{}, progress.Pushed{},
		progress.Exported{ID: "x", Type: "oci", Dest: "out.tar"}, progress.Message{},
		progress.CacheMiss{ID: "3", Reasons: []string{`build arg V: "1" -> "2"`}}} {
		v := jsonEvent(e)
		if v == nil {
			t.Errorf("%T has no JSON form", e)
			continue
		}
		b, _ := json.Marshal(v)
		if back, err := parseJSONEvent(b); err != nil || !reflect.DeepEqual(back, e) {
			t.Errorf("%T: %s parses to %#v, %v", e, b, back, err)
		}
	}
}

func TestQuietDisplay(t *testing.T) {
	var d display = quietDisplay{}
	send(d, recordedEvents())
	d.Close(errors.New("x")) // nothing to write to: nothing written
}

func TestWarningWriter(t *testing.T) {
	var got []progress.Event
	w := warningWriter{progress.Func(func(e progress.Event) { got = append(got, e) })}
	fmt.Fprintf(w, "strata: warning: overlayfs unavailable (%s); slower\n", "EPERM")
	fmt.Fprintf(w, "two\nlines\n")
	want := []progress.Event{progress.Warning{Message: "overlayfs unavailable (EPERM); slower"},
		progress.Warning{Message: "two"}, progress.Warning{Message: "lines"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
}

func TestProgressMode(t *testing.T) {
	for _, c := range []struct {
		flag     string
		set      bool
		env      string
		terminal bool
		want     string
	}{
		{"auto", false, "", true, "tty"},
		{"auto", false, "", false, "plain"},
		{"auto", false, "rawjson", true, "rawjson"}, // BUILDKIT_PROGRESS when the flag is not given
		{"plain", true, "rawjson", true, "plain"},   // the flag wins
		{"auto", true, "quiet", true, "tty"},        // given as auto, still
		{"auto", false, "auto", false, "plain"},     // BUILDKIT_PROGRESS=auto
		{"tty", true, "", false, "tty"},             // forced on a pipe
		{"quiet", true, "", false, "quiet"},
	} {
		got, err := progressMode(c.flag, c.set, c.env, c.terminal)
		if err != nil || got != c.want {
			t.Errorf("progressMode(%q, %t, %q, %t) = %q, %v; want %q", c.flag, c.set, c.env, c.terminal, got, err, c.want)
		}
	}
	if _, err := progressMode("fancy", true, "", true); err == nil || err.Error() != `--progress "fancy": want auto, plain, tty, rawjson or quiet` {
		t.Errorf("a bad --progress: %v", err)
	}
	if _, err := progressMode("auto", false, "fancy", true); err == nil || err.Error() != `BUILDKIT_PROGRESS "fancy": want auto, plain, tty, rawjson or quiet` {
		t.Errorf("a bad BUILDKIT_PROGRESS: %v", err)
	}
}

// runCLIEnv runs the command line in-process with BUILDKIT_PROGRESS set
// to env, stdout and stderr apart.
func runCLIEnv(t *testing.T, env string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("BUILDKIT_PROGRESS", env)
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errb.String(), err
}

// TestProgressFlag: a bad --progress or BUILDKIT_PROGRESS is refused
// before any work, in one line; BUILDKIT_PROGRESS chooses the display when
// --progress is not given.
func TestProgressFlag(t *testing.T) {
	ctx := writeContext(t, "FROM scratch\nLABEL a=b\n")
	for _, c := range []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"--progress", "fancy"}, `--progress "fancy": want auto, plain, tty, rawjson or quiet`},
		{"fancy", nil, `BUILDKIT_PROGRESS "fancy": want auto, plain, tty, rawjson or quiet`},
		{"plain", []string{"--progress", "tty?"}, `--progress "tty?": want`},
	} {
		root := filepath.Join(t.TempDir(), "store")
		stdout, stderr, err := runCLIEnv(t, c.env, append(append([]string{"build", "--root", root}, c.args...), ctx)...)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q %q: error %v, want one line %q", c.env, c.args, err, c.want)
		}
		if stdout != "" || stderr != "" {
			t.Errorf("%q %q: printed %q, %q", c.env, c.args, stdout, stderr)
		}
		if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q %q: the store was opened: %v", c.env, c.args, err)
		}
	}

	if os.Geteuid() != 0 {
		t.Skip("the builds below need root: the store is root's")
	}
	store := filepath.Join(t.TempDir(), "store")
	stdout, stderr, err := runCLIEnv(t, "rawjson", "build", "--root", store, ctx)
	if err != nil {
		t.Fatalf("BUILDKIT_PROGRESS=rawjson build: %v\n%s", err, stderr)
	}
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		e, err := parseJSONEvent([]byte(line))
		if err != nil {
			t.Fatalf("BUILDKIT_PROGRESS=rawjson: %q: %v", line, err)
		}
		types = append(types, fmt.Sprintf("%T", e))
	}
	want := []string{"progress.VertexStarted", "progress.VertexDone", "progress.VertexStarted", "progress.VertexDone"}
	if !reflect.DeepEqual(types, want) {
		t.Errorf("BUILDKIT_PROGRESS=rawjson: events %v, want %v:\n%s", types, want, stderr)
	}
	if !strings.HasPrefix(stdout, "sha256:") {
		t.Errorf("stdout %q, want the image ID", stdout)
	}
	_, stderr, err = runCLIEnv(t, "rawjson", "build", "--progress", "plain", "--root", store, ctx)
	if err != nil || !strings.HasPrefix(stderr, "#1 [1/2] FROM scratch\n#1 DONE ") || !strings.Contains(stderr, "#2 [2/2] LABEL a=b\n#2 CACHED\n") {
		t.Errorf("--progress plain over BUILDKIT_PROGRESS=rawjson: %v\n%s", err, stderr)
	}
	_, stderr, err = runCLIEnv(t, "quiet", "build", "--root", store, ctx)
	if err != nil || stderr != "" {
		t.Errorf("BUILDKIT_PROGRESS=quiet: %v, stderr %q", err, stderr)
	}
}

// TestPlainDisplayIsInert: text from registries and caches (warnings, errors,
// names) reaches the terminal with its control characters spelled out.
func TestPlainDisplayIsInert(t *testing.T) {
	var buf bytes.Buffer
	d := newPlainDisplay(&buf)
	evil := "\x1b]0;pwned\x07\x1b[2J"
	d.Event(progress.VertexStarted{ID: "1", Name: "importing cache manifest from " + evil})
	d.Event(progress.Warning{Message: "cache x not used: " + evil})
	d.Event(progress.VertexError{ID: "1", Message: "line one\nline two " + evil})
	d.Event(progress.CacheMiss{ID: "1", Reasons: []string{"a\x1b[31m.go: content differs"}})
	out := buf.String()
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("control characters reached the output: %q", out)
	}
	if strings.Count(out, "\n") != 4 {
		t.Errorf("%d lines for four events: %q", strings.Count(out, "\n"), out)
	}
}

// TestTTYDisplayExportAndInterrupt: an archive written to stdout shows its
// bytes and "stdout" as where it went; a build stopped by Ctrl-C ends
// CANCELED even when the step's error does not say so (a killed process's
// status), never FINISHED or FAILED.
func TestTTYDisplayExportAndInterrupt(t *testing.T) {
	var out bytes.Buffer
	term := &fakeTerminal{now: t0, width: 60, height: 24}
	d := newFakeTTY(&out, term)
	id := "export:docker:-"
	send(d, []progress.Event{
		progress.VertexStarted{ID: "1", Name: "[1/1] FROM scratch", Started: at(0)},
		progress.VertexDone{ID: "1"},
		progress.VertexStarted{ID: id, Name: "exporting to docker image format", Started: at(0)},
		progress.Transfer{ID: id, Name: "writing archive", Current: 7_800_000, Done: true},
		progress.Exported{ID: id, Type: "docker", Dest: "-"},
		progress.VertexDone{ID: id, Duration: 300 * ms},
	})
	term.now = at(400 * ms)
	d.Close(nil)
	checkGolden(t, "export to stdout", screen(t, out.String()), `[+] Building 0.4s (2/2) FINISHED
 => [1/1] FROM scratch                                 0.0s
 => exporting to docker image format                   0.3s
 => => writing archive 7.8MB                           0.0s
 => => exported to stdout
`)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		ctx  context.Context
		err  error
		want string
	}{
		{ctx, errors.New("Dockerfile:2: step 2/2 RUN sleep 9: signal: killed"), "CANCELED"},
		{context.Background(), errors.New("Dockerfile:2: step 2/2 RUN false: exit code 1"), "FAILED"},
		{ctx, nil, "FINISHED"},
	} {
		out.Reset()
		term.now = t0
		d := newFakeTTY(&out, term)
		d.Event(progress.VertexStarted{ID: "1", Name: "[1/1] RUN sleep 9", Started: t0})
		d.Close(outcome(c.ctx, c.err))
		if first := strings.SplitN(screen(t, out.String()), "\n", 2)[0]; first != "[+] Building 0.0s (0/1) "+c.want {
			t.Errorf("error %v: header %q, want %s", c.err, first, c.want)
		}
	}
}

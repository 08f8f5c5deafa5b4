package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/strata-build/strata/progress"
)

// ttyDisplay is the live view of a terminal, as docker buildx draws it: a
// header with the time and the steps finished, then a line per vertex,
// finished ones collapsed to one line with their time, running ones with
// their timer and their last few lines of output. The whole view is drawn
// again in place (the cursor moved up over the last frame) every tick; at
// Close, a last frame says FINISHED, FAILED or CANCELED, followed by the
// output of the steps that failed and the warnings.
type ttyDisplay struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	size  func() (width, height int)
	start time.Time

	vs       []*ttyVertex
	byID     map[string]*ttyVertex
	warnings []string
	lines    int // lines of the last frame, which the next one overwrites

	stop, stopped chan struct{}
}

// A vertex's state.
const (
	running = iota
	cached
	done
	failed
	canceled
)

type ttyVertex struct {
	name    string
	started time.Time
	state   int
	took    time.Duration
	logs    []string // the last keptLogLines lines of output
	subs    []*ttySub
}

// ttySub is a line under a vertex: a transfer, or where the image went.
type ttySub struct {
	text           string // a transfer's name, or the whole line
	transfer, done bool
	current, total int64
	started, ended time.Time // the display's clock
}

const (
	// liveLogLines is how many of a running step's last lines show, as in
	// buildx.
	liveLogLines = 6
	// keptLogLines is how many are kept for the report of a failed step.
	keptLogLines = 10
)

// newTTYDisplay draws on w; now and size are the clock and the terminal's
// size, a fake of each in tests.
func newTTYDisplay(w io.Writer, now func() time.Time, size func() (int, int)) *ttyDisplay {
	return &ttyDisplay{w: w, now: now, size: size, start: now(), byID: map[string]*ttyVertex{}}
}

// run redraws the view every interval, so timers run while a step does.
func (d *ttyDisplay) run(interval time.Duration) {
	d.stop, d.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				d.draw()
			}
		}
	}()
}

func (d *ttyDisplay) Event(e progress.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := e.(progress.Message); ok {
		// Above the view: erased, and drawn again below the line.
		d.erase()
		fmt.Fprintln(d.w, progress.Inert(m.Text))
		d.drawLocked(false, "")
		return
	}
	if s, ok := e.(progress.VertexStarted); ok {
		v := &ttyVertex{name: progress.Inert(s.Name), started: s.Started}
		d.vs = append(d.vs, v)
		d.byID[s.ID] = v
		return
	}
	if w, ok := e.(progress.Warning); ok {
		text := progress.Inert(w.Message)
		if w.File != "" {
			text = progress.Inert(fmt.Sprintf("%s:%d: %s: %s", w.File, w.Line, w.Rule, w.Message))
		}
		for _, seen := range d.warnings {
			if seen == text {
				return // a second build in one stream (--check-repro) warns again
			}
		}
		d.warnings = append(d.warnings, text)
		return
	}
	id := ""
	switch e := e.(type) {
	case progress.VertexLog:
		id = e.ID
	case progress.VertexCached:
		id = e.ID
	case progress.VertexDone:
		id = e.ID
	case progress.VertexError:
		id = e.ID
	case progress.Transfer:
		id = e.ID
	case progress.Pushed:
		id = e.ID
	case progress.Exported:
		id = e.ID
	case progress.CacheMiss:
		id = e.ID
	}
	v := d.byID[id]
	if v == nil {
		return
	}
	switch e := e.(type) {
	case progress.VertexLog:
		v.logs = append(v.logs, e.Line)
		if n := len(v.logs); n > keptLogLines {
			v.logs = append(v.logs[:0], v.logs[n-keptLogLines:]...)
		}
	case progress.VertexCached:
		v.state = cached
	case progress.VertexDone:
		v.state, v.took = done, e.Duration
	case progress.VertexError:
		v.state, v.took = failed, e.Duration
		if e.Canceled {
			v.state = canceled
		}
	case progress.Transfer:
		d.transfer(v, e)
	case progress.Pushed:
		v.subs = append(v.subs, &ttySub{text: progress.Inert("pushed " + e.Ref + "@" + e.Digest)})
	case progress.Exported:
		dest := e.Dest
		if dest == "-" {
			dest = "stdout"
		}
		v.subs = append(v.subs, &ttySub{text: progress.Inert("exported to " + dest)})
	case progress.CacheMiss:
		for _, r := range e.Reasons {
			v.subs = append(v.subs, &ttySub{text: progress.Inert("cache miss: " + r)})
		}
	}
}

// transfer updates the vertex's line for the transfer named e.Name, or
// adds one.
func (d *ttyDisplay) transfer(v *ttyVertex, e progress.Transfer) {
	var s *ttySub
	for _, sub := range v.subs {
		if sub.transfer && !sub.done && sub.text == progress.Inert(e.Name) {
			s = sub
		}
	}
	if s == nil {
		s = &ttySub{text: progress.Inert(e.Name), transfer: true, started: d.now()}
		v.subs = append(v.subs, s)
	}
	s.current, s.total = e.Current, e.Total
	if e.Done {
		s.done, s.ended = true, d.now()
	}
}

// Close draws the last frame, then the output of the steps that failed
// and the warnings.
func (d *ttyDisplay) Close(err error) {
	if d.stop != nil {
		close(d.stop)
		<-d.stopped
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	status := "FINISHED"
	switch {
	case errors.Is(err, context.Canceled):
		status = "CANCELED"
	case err != nil:
		status = "FAILED"
	}
	if len(d.vs) > 0 {
		d.drawLocked(true, status)
	}
	for _, v := range d.vs {
		if v.state != failed || len(v.logs) == 0 {
			continue
		}
		fmt.Fprintf(d.w, "------\n > %s:\n", v.name)
		for _, l := range v.logs {
			fmt.Fprintln(d.w, l)
		}
		fmt.Fprintln(d.w, "------")
	}
	if n := len(d.warnings); n > 0 {
		fmt.Fprintf(d.w, "%d warning%s found:\n", n, map[bool]string{true: "s"}[n > 1])
		for _, w := range d.warnings {
			fmt.Fprintf(d.w, " - %s\n", w)
		}
	}
}

func (d *ttyDisplay) draw() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drawLocked(false, "")
}

// drawLocked writes a frame over the last one; d.mu is held. A live frame
// fits the terminal's height (the cursor cannot move up past the top of
// the screen); the last one is drawn whole, as nothing moves after it.
func (d *ttyDisplay) drawLocked(final bool, status string) {
	if len(d.vs) == 0 {
		return
	}
	lines := d.frame(final, status)
	var b strings.Builder
	if d.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", d.lines)
	}
	for _, l := range lines {
		b.WriteString(l + "\x1b[K\n")
	}
	if len(lines) < d.lines {
		b.WriteString("\x1b[J")
	}
	d.lines = len(lines)
	io.WriteString(d.w, b.String())
}

// erase removes the last frame, leaving the cursor where it began.
func (d *ttyDisplay) erase() {
	if d.lines > 0 {
		fmt.Fprintf(d.w, "\x1b[%dA\x1b[J", d.lines)
		d.lines = 0
	}
}

// frame is the view's lines, each shorter than the terminal is wide: a
// line that wrapped would take two rows and throw the redrawing off.
func (d *ttyDisplay) frame(final bool, status string) []string {
	now := d.now()
	width, height := d.size()
	width = max(width-1, 20)
	finished := 0
	for _, v := range d.vs {
		if v.state != running {
			finished++
		}
	}
	header := fmt.Sprintf("[+] Building %.1fs (%d/%d)", now.Sub(d.start).Seconds(), finished, len(d.vs))
	if final {
		header += " " + status
	}
	blocks := make([][]string, len(d.vs))
	total := 1
	for i, v := range d.vs {
		blocks[i] = v.lines(now, width, final)
		total += len(blocks[i])
	}
	if !final {
		// Too tall: the oldest finished vertexes go first, as in buildx.
		limit := max(height-1, 2)
		for i, v := range d.vs {
			if total <= limit {
				break
			}
			if v.state != running {
				total -= len(blocks[i])
				blocks[i] = nil
			}
		}
	}
	lines := []string{fit(header, "", width)}
	for _, b := range blocks {
		lines = append(lines, b...)
	}
	if !final && len(lines) > max(height-1, 2) {
		lines = append(lines[:1], lines[len(lines)-max(height-2, 1):]...)
	}
	return lines
}

// lines are a vertex's lines in a frame; at the last frame a vertex still
// running was stopped with the build.
func (v *ttyVertex) lines(now time.Time, width int, final bool) []string {
	state, took := v.state, v.took
	if state == running {
		took = now.Sub(v.started)
		if final {
			state = canceled
		}
	}
	prefix := map[int]string{cached: "CACHED ", failed: "ERROR ", canceled: "CANCELED "}[state]
	if state == cached {
		took = 0
	}
	out := []string{fit(" => "+prefix+v.name, seconds(took), width)}
	for _, s := range v.subs {
		if !s.transfer {
			// "pushed REF@DIGEST" is whole at the end, even if it wraps:
			// the user copies it, and nothing is redrawn after.
			line := " => => " + s.text
			if !final {
				line = fit(line, "", width)
			}
			out = append(out, line)
			continue
		}
		end := now
		if s.done {
			end = s.ended
		}
		size := transferSize(progress.Transfer{Current: s.current, Total: s.total})
		out = append(out, fit(" => => "+s.text+" "+size, seconds(end.Sub(s.started)), width))
	}
	if state == running {
		for _, l := range v.logs[max(len(v.logs)-liveLogLines, 0):] {
			out = append(out, fit(" => => # "+expandTabs(l), "", width))
		}
	}
	return out
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// fit is left and right (a time) on a line of width columns, right
// aligned to the edge; left is cut to make room.
func fit(left, right string, width int) string {
	room := width
	if right != "" {
		room -= utf8.RuneCountInString(right) + 1
	}
	if n := utf8.RuneCountInString(left); n > room {
		left = cut(left, max(room, 0))
	}
	if right == "" {
		return left
	}
	pad := width - utf8.RuneCountInString(left) - utf8.RuneCountInString(right)
	return left + strings.Repeat(" ", max(pad, 1)) + right
}

// cut shortens s to n runes, the last three "..." when there is room.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 3 {
		return string(r[:n])
	}
	return string(r[:n-3]) + "..."
}

// expandTabs replaces tabs by the spaces a terminal would show, so that
// the width of a line is its count of runes.
func expandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for _, r := range s {
		if r == '\t' {
			n := 8 - col%8
			b.WriteString(strings.Repeat(" ", n))
			col += n
			continue
		}
		b.WriteRune(r)
		col++
	}
	return b.String()
}

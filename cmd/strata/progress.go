package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata/progress"
)

// display shows a build's events (package progress) to its user. The
// builder and the exports send events from several goroutines; Close ends
// the display once the command's work is done, err being its outcome.
type display interface {
	progress.Sink
	Close(err error)
}

// outcome is err for a display's Close, context.Canceled among its causes
// when ctx ended (Ctrl-C) whatever the step that stopped said (a killed
// process's exit status, say): the view then says CANCELED.
func outcome(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return errors.Join(err, ctx.Err())
	}
	return err
}

// progressModes are --progress's values, as docker buildx names them.
const progressModes = "auto, plain, tty, rawjson or quiet"

// progressMode is --progress, else $BUILDKIT_PROGRESS (as buildx takes it
// when the flag is not given), else auto; auto is tty on a terminal, else
// plain. A bad value is an error naming where it came from.
func progressMode(flag string, flagSet bool, env string, terminal bool) (string, error) {
	mode, from := flag, "--progress"
	if !flagSet && env != "" {
		mode, from = env, "BUILDKIT_PROGRESS"
	}
	switch mode {
	case "auto":
		if terminal {
			return "tty", nil
		}
		return "plain", nil
	case "plain", "tty", "rawjson", "quiet":
		return mode, nil
	}
	return "", fmt.Errorf("%s %q: want %s", from, mode, progressModes)
}

// newDisplay reads --progress (or BUILDKIT_PROGRESS) and starts the display
// it names on stderr.
func (o *buildOptions) newDisplay(cmd *cobra.Command) (display, error) {
	w := cmd.ErrOrStderr()
	mode, err := progressMode(o.progress, cmd.Flags().Changed("progress"), os.Getenv("BUILDKIT_PROGRESS"), isTerminal(w))
	if err != nil {
		return nil, err
	}
	switch mode {
	case "tty":
		d := newTTYDisplay(w, time.Now, func() (int, int) { return terminalSize(w) })
		d.run(100 * time.Millisecond)
		return d, nil
	case "rawjson":
		return newJSONDisplay(w), nil
	case "quiet":
		return quietDisplay{}, nil
	}
	return newPlainDisplay(w), nil
}

// plainDisplay writes BuildKit's plain progress format, a line per event
// as it comes: "#N name", "#N <line of output>", "#N CACHED",
// "#N DONE 0.4s", "#N ERROR: ...". Vertexes are numbered in the order they
// start. Scripts and the end-to-end tests read it: keep it as it is.
type plainDisplay struct {
	mu  sync.Mutex
	w   io.Writer
	n   int
	num map[string]int // vertex ID -> the number of its latest vertex
}

func newPlainDisplay(w io.Writer) *plainDisplay {
	return &plainDisplay{w: w, num: map[string]int{}}
}

func (d *plainDisplay) Event(e progress.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch e := e.(type) {
	case progress.VertexStarted:
		d.n++
		d.num[e.ID] = d.n
		fmt.Fprintf(d.w, "#%d %s\n", d.n, progress.Inert(e.Name))
	case progress.VertexLog:
		fmt.Fprintf(d.w, "#%d %s\n", d.num[e.ID], e.Line)
	case progress.VertexCached:
		fmt.Fprintf(d.w, "#%d CACHED\n", d.num[e.ID])
	case progress.VertexDone:
		fmt.Fprintf(d.w, "#%d DONE %.1fs\n", d.num[e.ID], e.Duration.Seconds())
	case progress.VertexError:
		fmt.Fprintf(d.w, "#%d ERROR: %s\n", d.num[e.ID], progress.Inert(e.Message))
	case progress.Transfer:
		// The total only: the bytes as they go are for the live view.
		if e.Done {
			fmt.Fprintf(d.w, "#%d %s %s done\n", d.num[e.ID], e.Name, transferSize(e))
		}
	case progress.Pushed:
		fmt.Fprintf(d.w, "#%d pushed %s\n", d.num[e.ID], progress.Inert(e.Ref+"@"+e.Digest))
	case progress.Exported:
		fmt.Fprintf(d.w, "#%d exported to %s\n", d.num[e.ID], progress.Inert(e.Dest))
	case progress.Warning:
		fmt.Fprintln(d.w, progress.Inert(warningText(e)))
	case progress.Message:
		fmt.Fprintln(d.w, progress.Inert(e.Text))
	case progress.CacheMiss:
		for _, r := range e.Reasons {
			fmt.Fprintf(d.w, "#%d cache miss: %s\n", d.num[e.ID], progress.Inert(r))
		}
	}
}

// Close adds nothing: the error is the command's last line.
func (d *plainDisplay) Close(error) {}

// warningText is how plain output has always shown a warning.
func warningText(w progress.Warning) string {
	if w.File != "" {
		return fmt.Sprintf("WARN: %s:%d: %s: %s", w.File, w.Line, w.Rule, w.Message)
	}
	return "strata: warning: " + w.Message
}

// transferSize is "1.05MB / 2.10MB", or "1.05MB" when the total is unknown.
func transferSize(t progress.Transfer) string {
	if t.Total > 0 {
		return humanSize(t.Current) + " / " + humanSize(t.Total)
	}
	return humanSize(t.Current)
}

// humanSize writes a byte count as docker does (go-units' HumanSize):
// decimal units, four significant digits at most.
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}

// quietDisplay shows nothing; the image ID on stdout and an error, if
// any, are the command's.
type quietDisplay struct{}

func (quietDisplay) Event(progress.Event) {}
func (quietDisplay) Close(error)          {}

// warningWriter turns the lines the sandbox writes to Options.Warnings
// ("strata: warning: ...") into Warning events, so they reach the display
// instead of cutting through a live view.
type warningWriter struct{ sink progress.Sink }

func (w warningWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line = strings.TrimPrefix(line, "strata: warning: "); line != "" {
			w.sink.Event(progress.Warning{Message: line})
		}
	}
	return len(b), nil
}

// jsonDisplay writes an event per line as a JSON object, for programs;
// docs/progress.md describes the objects. Field names and types are
// stable: add, never rename.
type jsonDisplay struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newJSONDisplay(w io.Writer) *jsonDisplay {
	enc := json.NewEncoder(w)
	// Lines of a step's output hold <, > and & as they are.
	enc.SetEscapeHTML(false)
	return &jsonDisplay{enc: enc}
}

func (d *jsonDisplay) Event(e progress.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v := jsonEvent(e); v != nil {
		d.enc.Encode(v)
	}
}

func (d *jsonDisplay) Close(error) {}

// The objects of --progress=rawjson, one type per event; "type" says which.
type (
	jsonVertexStarted struct {
		Type    string    `json:"type"`
		ID      string    `json:"id"`
		Name    string    `json:"name"`
		Started time.Time `json:"started"`
	}
	jsonVertexLog struct {
		Type   string `json:"type"`
		ID     string `json:"id"`
		Stream string `json:"stream"`
		Line   string `json:"line"`
	}
	jsonVertexCached struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	jsonVertexDone struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		DurationNS int64  `json:"duration_ns"`
	}
	jsonVertexError struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		Message    string `json:"message"`
		DurationNS int64  `json:"duration_ns"`
		Canceled   bool   `json:"canceled"`
	}
	jsonWarning struct {
		Type    string `json:"type"`
		File    string `json:"file"`
		Line    int    `json:"line"`
		Rule    string `json:"rule"`
		Message string `json:"message"`
	}
	jsonTransfer struct {
		Type    string `json:"type"`
		ID      string `json:"id"`
		Name    string `json:"name"`
		Current int64  `json:"current"`
		Total   int64  `json:"total"`
		Done    bool   `json:"done"`
	}
	jsonPushed struct {
		Type   string `json:"type"`
		ID     string `json:"id"`
		Ref    string `json:"ref"`
		Digest string `json:"digest"`
	}
	jsonExported struct {
		Type   string `json:"type"`
		ID     string `json:"id"`
		Output string `json:"output"`
		Dest   string `json:"dest"`
	}
	jsonMessage struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	jsonCacheMiss struct {
		Type    string   `json:"type"`
		ID      string   `json:"id"`
		Reasons []string `json:"reasons"`
	}
)

func jsonEvent(e progress.Event) any {
	switch e := e.(type) {
	case progress.VertexStarted:
		return jsonVertexStarted{"vertex_started", e.ID, e.Name, e.Started.UTC()}
	case progress.VertexLog:
		return jsonVertexLog{"vertex_log", e.ID, string(e.Stream), e.Line}
	case progress.VertexCached:
		return jsonVertexCached{"vertex_cached", e.ID}
	case progress.VertexDone:
		return jsonVertexDone{"vertex_done", e.ID, int64(e.Duration)}
	case progress.VertexError:
		return jsonVertexError{"vertex_error", e.ID, e.Message, int64(e.Duration), e.Canceled}
	case progress.Warning:
		return jsonWarning{"warning", e.File, e.Line, e.Rule, e.Message}
	case progress.Transfer:
		return jsonTransfer{"transfer", e.ID, e.Name, e.Current, e.Total, e.Done}
	case progress.Pushed:
		return jsonPushed{"pushed", e.ID, e.Ref, e.Digest}
	case progress.Exported:
		return jsonExported{"exported", e.ID, e.Type, e.Dest}
	case progress.Message:
		return jsonMessage{"message", e.Text}
	case progress.CacheMiss:
		return jsonCacheMiss{"cache_miss", e.ID, e.Reasons}
	}
	return nil
}

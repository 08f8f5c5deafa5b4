package builder

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/progress"
)

// printingRunner is the fake runner, printing a line to stdout and a
// line without a newline to stderr first: the step's output as events.
type printingRunner struct{ fakeRunner }

func (p *printingRunner) Run(ctx context.Context, spec executor.Spec) (executor.Result, error) {
	fmt.Fprint(spec.Stdout, "to stdout\n")
	fmt.Fprint(spec.Stderr, "to \x1b[31mstderr")
	return p.fakeRunner.Run(ctx, spec)
}

// timeless is the events without their times and durations, which vary
// from run to run; it checks that each such time was set.
func timeless(t *testing.T, events []progress.Event) []progress.Event {
	t.Helper()
	var out []progress.Event
	for _, e := range events {
		switch x := e.(type) {
		case progress.VertexStarted:
			if x.Started.IsZero() {
				t.Errorf("%+v: no start time", x)
			}
			x.Started = time.Time{}
			e = x
		case progress.VertexDone:
			x.Duration = 0
			e = x
		case progress.VertexError:
			x.Duration = 0
			e = x
		}
		out = append(out, e)
	}
	return out
}

func checkEvents(t *testing.T, what string, got, want []progress.Event) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	t.Errorf("%s: events differ", what)
	for i := range max(len(got), len(want)) {
		var g, w any = "(none)", "(none)"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		mark := "  "
		if !reflect.DeepEqual(g, w) {
			mark = "!="
		}
		t.Logf("%s got %T%+v\n     want %T%+v", mark, g, g, w, w)
	}
}

// TestProgressEvents: a build sends a vertex per step, named as BuildKit
// names it, with the step's output line by line (made inert), then DONE
// or CACHED; a failing step sends its error; the Dockerfile's warnings
// come first.
func TestProgressEvents(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	tb.runner = &printingRunner{}
	src := baseDockerfile + "RUN write /a x\n"
	build := func(src string) ([]progress.Event, error) {
		var rec recorder
		_, _, err := tb.build(src, func(o *Options) { o.Progress = &rec })
		return timeless(t, rec.all()), err
	}
	type (
		started = progress.VertexStarted
		done    = progress.VertexDone
		cached  = progress.VertexCached
		logLine = progress.VertexLog
	)
	got, err := build(src)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, "first build", got, []progress.Event{
		started{ID: "1", Name: "[1/3] FROM scratch"}, done{ID: "1"},
		started{ID: "2", Name: "[2/3] COPY base/ /"}, done{ID: "2"},
		started{ID: "3", Name: "[3/3] RUN write /a x"},
		logLine{ID: "3", Stream: progress.Stdout, Line: "to stdout"},
		logLine{ID: "3", Stream: progress.Stderr, Line: `to \x1b[31mstderr`},
		done{ID: "3"},
	})

	got, err = build(src)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, "second build", got, []progress.Event{
		started{ID: "1", Name: "[1/3] FROM scratch"}, done{ID: "1"},
		started{ID: "2", Name: "[2/3] COPY base/ /"}, cached{ID: "2"},
		started{ID: "3", Name: "[3/3] RUN write /a x"}, cached{ID: "3"},
	})

	got, err = build("FROM scratch AS a\nCOPY base/ /\nFROM scratch AS a\nCOPY --from=0 / /\nRUN fail 7\n")
	if err == nil {
		t.Fatal("a failing RUN built")
	}
	checkEvents(t, "failing build", got, []progress.Event{
		progress.Warning{File: "Dockerfile", Line: 3, Rule: "DuplicateStageName", Message: `Duplicate stage name "a", stage names should be unique`},
		started{ID: "1", Name: "[a 1/2] FROM scratch"}, done{ID: "1"},
		started{ID: "2", Name: "[a 2/2] COPY base/ /"}, cached{ID: "2"},
		started{ID: "3", Name: "[a 1/3] FROM scratch"}, done{ID: "3"},
		started{ID: "4", Name: "[a 2/3] COPY --from=0 / /"}, done{ID: "4"},
		started{ID: "5", Name: "[a 3/3] RUN fail 7"},
		logLine{ID: "5", Stream: progress.Stdout, Line: "to stdout"},
		logLine{ID: "5", Stream: progress.Stderr, Line: `to \x1b[31mstderr`},
		progress.VertexError{ID: "5", Message: "exit code 7"},
	})
}

// TestExportEvents: an export is a vertex of its own, with the bytes it
// writes or pushes and, last, where the image went.
func TestExportEvents(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile)
	digest := res.Descriptor.Digest.String()
	host, _ := countingRegistry(t)
	dest := filepath.Join(t.TempDir(), "image.tar")
	ref := host + "/app:1"
	for _, c := range []struct {
		out      Output
		transfer string
		last     progress.Event
	}{
		{Output{Type: "oci", Dest: dest}, "writing archive", progress.Exported{ID: "export:oci:" + dest, Type: "oci", Dest: dest}},
		{Output{Type: "registry", Names: []string{ref}}, "pushing " + ref, progress.Pushed{ID: "export:registry:" + ref, Ref: ref, Digest: digest}},
	} {
		var rec recorder
		c.out.Progress = &rec
		if err := Export(context.Background(), res.Image, c.out); err != nil {
			t.Fatal(err)
		}
		got := timeless(t, rec.all())
		if len(got) < 4 {
			t.Fatalf("%s: events %+v", c.out.Type, got)
		}
		id := got[0].(progress.VertexStarted).ID
		// The transfer's intermediate events depend on write sizes: keep its
		// first and its last.
		last := got[len(got)-3].(progress.Transfer)
		if last.Current == 0 || !last.Done || (c.out.Type == "registry" && last.Total != last.Current) {
			t.Errorf("%s: last transfer event %+v", c.out.Type, last)
		}
		got = append(got[:2], got[len(got)-2:]...)
		name := map[string]string{"oci": "exporting to oci image format", "registry": "exporting to image"}[c.out.Type]
		checkEvents(t, c.out.Type, got, []progress.Event{
			progress.VertexStarted{ID: id, Name: name},
			got[1].(progress.Transfer), // checked below
			c.last,
			progress.VertexDone{ID: id},
		})
		if tr := got[1].(progress.Transfer); tr.ID != id || tr.Name != c.transfer || tr.Done {
			t.Errorf("%s: first transfer event %+v, want %q", c.out.Type, tr, c.transfer)
		}
	}

	var rec recorder
	err := Export(context.Background(), res.Image, Output{Type: "oci", Dest: filepath.Join(t.TempDir(), "no", "such", "dir"), Progress: &rec})
	got := rec.all()
	if e, ok := got[len(got)-1].(progress.VertexError); err == nil || !ok || e.Message != err.Error() {
		t.Errorf("a failed export: %v; last event %+v", err, got[len(got)-1])
	}
}

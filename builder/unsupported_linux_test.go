package builder

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
)

// slowRunner is the fake runner taking its time over every RUN, as a real
// step would: a refusal that came after it would come minutes late.
func slowRunner() *fakeRunner {
	return &fakeRunner{inspect: func(executor.Spec) { time.Sleep(200 * time.Millisecond) }}
}

// parseAndBuild goes the way strata build goes: Parse, then Build the
// graph.
func (tb *testBuild) parseAndBuild(src string) error {
	g, err := dockerfile.Parse([]byte(src), dockerfile.Options{})
	if err != nil {
		return err
	}
	_, err = Build(context.Background(), Options{Store: tb.store, Graph: g, ContextDir: tb.dir, Runner: tb.runner, Progress: textSink(io.Discard)})
	return err
}

// TestUnsupportedRefusedBeforeAnyStep checks that a feature Strata does
// not support is refused before the build runs anything: a slow RUN
// before the offending instruction never runs, and the error names the
// offending line and wraps dockerfile.ErrNotSupported.
func TestUnsupportedRefusedBeforeAnyStep(t *testing.T) {
	const head = "FROM scratch AS a\nCOPY one.txt /\nFROM scratch\nCOPY base/ /\nRUN noop\n" // the slow RUN is line 5
	// Each build has a store of its own: a cached RUN would not run.
	tb := newTestBuild(t, baseFiles)
	fr := slowRunner()
	tb.runner = fr
	if err := tb.parseAndBuild(head); err != nil || fr.count() != 1 {
		t.Fatalf("without an unsupported feature: %v, %d runs; want the slow RUN to run once", err, fr.count())
	}
	for _, offending := range []string{
		"RUN --security=insecure noop",
		"RUN --device=x noop",
	} {
		t.Run(offending, func(t *testing.T) {
			tb := newTestBuild(t, baseFiles)
			fr := slowRunner()
			tb.runner = fr
			err := tb.parseAndBuild(head + "ENV X=1\n" + offending + "\n")
			var de *dockerfile.Error
			if !errors.Is(err, dockerfile.ErrNotSupported) || !errors.As(err, &de) || de.Line != 7 {
				t.Errorf("error %v, want Dockerfile:7 wrapping ErrNotSupported", err)
			}
			if n := fr.count(); n != 0 {
				t.Errorf("%d RUN steps ran before the refusal", n)
			}
		})
	}
	// Not a missing feature, but missing input all the same: a required secret or agent
	// the build was not given.
	for _, offending := range []string{
		"RUN --mount=type=secret,id=token,required=true noop",
		"RUN --mount=type=ssh,required noop",
	} {
		t.Run(offending, func(t *testing.T) {
			tb := newTestBuild(t, baseFiles)
			fr := slowRunner()
			tb.runner = fr
			err := tb.parseAndBuild(head + "ENV X=1\n" + offending + "\n")
			var de *dockerfile.Error
			if !errors.As(err, &de) || de.Line != 7 || !strings.Contains(err.Error(), "is required but was not given: pass --") {
				t.Errorf("error %v, want Dockerfile:7 naming the flag to pass", err)
			}
			if n := fr.count(); n != 0 {
				t.Errorf("%d RUN steps ran before the refusal", n)
			}
		})
	}
}

// TestUnsupportedTriggerOfImage checks the one refusal Parse cannot make:
// an ONBUILD trigger in the base image's config. The stage that inherits
// it fails before any of its steps runs, the slow trigger before the
// offending one included, at its FROM line.
func TestUnsupportedTriggerOfImage(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile + "ONBUILD RUN noop\nONBUILD RUN --security=insecure noop\n")
	if err := Tag(tb.store, res, []string{"local/trigger"}); err != nil {
		t.Fatal(err)
	}
	fr := slowRunner()
	tb.runner = fr
	err := tb.parseAndBuild("FROM local/trigger AS t\nRUN noop\nFROM scratch\nCOPY --from=t /real /real\nRUN noop\n")
	var de *dockerfile.Error
	if !errors.Is(err, dockerfile.ErrNotSupported) || !errors.As(err, &de) || de.Line != 1 ||
		!strings.Contains(err.Error(), `ONBUILD trigger "RUN --security=insecure noop" of the base: RUN --security=insecure: not supported`) {
		t.Errorf("error %v, want the trigger refused at Dockerfile:1", err)
	}
	if n := fr.count(); n != 0 {
		t.Errorf("%d RUN steps ran before the refusal", n)
	}
}

package builder

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/dockerfile"
)

// TestConfigAndHistory checks the config and history docker build
// (BuildKit) writes for the metadata instructions.
func TestConfigAndHistory(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(`FROM scratch
ARG V=1
ENV A=x B=${V}
LABEL org.example.l="v"
WORKDIR /app
WORKDIR sub
USER app:staff
EXPOSE 80 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
SHELL ["/bin/bash", "-c"]
HEALTHCHECK --interval=5s CMD check
ONBUILD RUN echo later
ENTRYPOINT ["/entry"]
CMD run me
`, func(o *Options) { o.Labels = map[string]string{"from": "cli"} })
	cfg := configOf(t, res.Image)
	c := cfg.Config
	want := v1.Config{
		Env:          []string{"PATH=" + dockerfile.DefaultPathEnv, "A=x", "B=1"},
		Labels:       map[string]string{"org.example.l": "v", "from": "cli"},
		WorkingDir:   "/app/sub",
		User:         "app:staff",
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		StopSignal:   "SIGTERM",
		Shell:        []string{"/bin/bash", "-c"},
		OnBuild:      []string{"RUN echo later"},
		Entrypoint:   []string{"/entry"},
		Cmd:          []string{"/bin/bash", "-c", "run me"},
		ArgsEscaped:  true,
	}
	c.Healthcheck = nil
	if !reflect.DeepEqual(c, want) {
		got, _ := json.Marshal(c)
		w, _ := json.Marshal(want)
		t.Errorf("config\n%s\nwant\n%s", got, w)
	}
	var createdBy []string
	for _, h := range cfg.History {
		// WORKDIR creates its directory in a layer, as BuildKit does.
		wantEmpty := !strings.HasPrefix(h.CreatedBy, "WORKDIR ")
		if h.EmptyLayer != wantEmpty || h.Comment != historyComment {
			t.Errorf("history %+v: want empty_layer %t and BuildKit's comment", h, wantEmpty)
		}
		createdBy = append(createdBy, h.CreatedBy)
	}
	wantHistory := []string{"ARG V=1", "ENV A=x B=1", `LABEL org.example.l=v`, "WORKDIR /app", "WORKDIR /app/sub",
		"USER app:staff", "EXPOSE [53/udp 80/tcp]", "VOLUME [/data]", "STOPSIGNAL SIGTERM", "SHELL [/bin/bash -c]",
		"HEALTHCHECK {Test:[CMD-SHELL check] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}",
		`ENTRYPOINT ["/entry"]`, `CMD ["/bin/bash" "-c" "run me"]`}
	if !reflect.DeepEqual(createdBy, wantHistory) {
		t.Errorf("history\n%q\nwant\n%q", createdBy, wantHistory)
	}
	if len(cfg.RootFS.DiffIDs) != 2 {
		t.Errorf("%d layers, want the two WORKDIRs'", len(cfg.RootFS.DiffIDs))
	}
}

func TestEntrypointClearsInheritedCmd(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild("FROM scratch AS a\nCMD [\"a\"]\nFROM a\nENTRYPOINT [\"e\"]\n")
	if c := configOf(t, res.Image).Config.Cmd; c != nil {
		t.Errorf("cmd %q, want none after ENTRYPOINT", c)
	}
}

func TestRunStep(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile + "ARG GREETING=hello\nENV E=1\nWORKDIR /w\nUSER app\nRUN write /out hi\nRUN noop\n")
	runs := tb.runner.(*fakeRunner).runs
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	spec := runs[0]
	if spec.Cwd != "/w" || spec.User != "app" || !reflect.DeepEqual(spec.Args, []string{"/bin/sh", "-c", "write /out hi"}) {
		t.Errorf("spec cwd %q user %q args %q", spec.Cwd, spec.User, spec.Args)
	}
	env := strings.Join(spec.Env, " ")
	if !strings.Contains(env, "GREETING=hello") || !strings.Contains(env, "E=1") {
		t.Errorf("env %q lacks the ARG and ENV", env)
	}
	if len(spec.Lowers) != 2 {
		t.Errorf("%d lowers, want the COPY's and the WORKDIR's layers", len(spec.Lowers))
	}
	cfg := configOf(t, res.Image)
	h := cfg.History[len(cfg.History)-2]
	if h.CreatedBy != "RUN |1 GREETING=hello /bin/sh -c write /out hi # buildkit" || h.EmptyLayer {
		t.Errorf("history %+v", h)
	}
	if last := cfg.History[len(cfg.History)-1]; !last.EmptyLayer {
		t.Errorf("a RUN that changes nothing made a layer: %+v", last)
	}
	if len(cfg.RootFS.DiffIDs) != 3 {
		t.Errorf("%d layers, want COPY, WORKDIR and the first RUN's", len(cfg.RootFS.DiffIDs))
	}
}

func TestRunFailure(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	_, out, err := tb.build(baseDockerfile + "RUN noop\nRUN fail 7\nRUN noop\n")
	want := "Dockerfile:4: step 4/5 RUN fail 7: exit code 7"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	var exit *ExitError
	var de *dockerfile.Error
	if !errors.As(err, &exit) || exit.Code != 7 || !errors.As(err, &de) || de.Line != 4 {
		t.Errorf("error %v does not carry the exit code and line", err)
	}
	if !strings.Contains(out, "ERROR: exit code 7") {
		t.Errorf("progress lacks the error:\n%s", out)
	}
}

func TestOnBuildTriggersRun(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, out := tb.mustBuild("FROM scratch AS parent\nCOPY base/ /\nONBUILD COPY one.txt /triggered\nFROM parent\nENV X=1\n")
	for _, want := range []string{"[stage-1 1/3] FROM parent\n", "[stage-1 2/3] COPY one.txt /triggered\n", "[stage-1 3/3] ENV X=1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if _, err := readImageFile(t, res, "triggered"); err != nil {
		t.Errorf("ONBUILD trigger did not run: %v", err)
	}
	if ob := configOf(t, res.Image).Config.OnBuild; len(ob) != 0 {
		t.Errorf("triggers %q passed on to the child", ob)
	}
}

func TestMultiStage(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	src := baseDockerfile + "RUN write /built artifact\nFROM scratch AS final\nCOPY --from=0 /built /real/ /out/\nFROM scratch AS unused\nRUN fail 1\n"
	g, err := dockerfile.Parse([]byte(src), dockerfile.Options{Target: "final"})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := tb.mustBuild(src, func(o *Options) { o.Graph = g })
	for p, want := range map[string]string{"out/built": "artifact", "out/keep": "kept"} {
		if got, err := readImageFile(t, res, p); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	if n := len(configOf(t, res.Image).RootFS.DiffIDs); n != 1 {
		t.Errorf("%d layers, want 1", n)
	}
}

func TestParallelStages(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	src := "FROM scratch AS a\nCOPY one.txt /a\nRUN write /ra x\nFROM scratch AS b\nCOPY two.md /b\nRUN write /rb y\nFROM scratch\nCOPY --from=a /a /ra /\nCOPY --from=b /b /rb /\n"
	res, _ := tb.mustBuild(src)
	for p, want := range map[string]string{"a": "one", "ra": "x", "b": "two", "rb": "y"} {
		if got, err := readImageFile(t, res, p); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	_, _, err := tb.build("FROM scratch AS a\nRUN fail 3\nFROM scratch AS b\nRUN noop\nFROM scratch\nCOPY --from=a / /\nCOPY --from=b / /\n")
	if err == nil || !strings.Contains(err.Error(), "Dockerfile:2: step 2/2 RUN fail 3: exit code 7") {
		t.Errorf("error %v, want the failing stage's", err)
	}
}

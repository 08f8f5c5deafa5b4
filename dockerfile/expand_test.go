package dockerfile

import (
	"io/fs"
	"slices"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

var testPlatform = specs.Platform{OS: "linux", Architecture: "amd64"}

func mustParse(t *testing.T, src string, buildArgs map[string]string) *Graph {
	t.Helper()
	g, err := Parse([]byte(src), Options{BuildArgs: buildArgs, Platform: testPlatform, BuildPlatform: testPlatform})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return g
}

// lastValue returns the value the last step's ENV, LABEL, WORKDIR or USER
// ends up with, the way each rule under test shows.
func lastValue(t *testing.T, st Step) string {
	t.Helper()
	switch c := st.Command.(type) {
	case *instructions.EnvCommand:
		return c.Env[len(c.Env)-1].Value
	case *instructions.LabelCommand:
		return c.Labels[len(c.Labels)-1].Value
	case *instructions.WorkdirCommand:
		return c.Path
	case *instructions.UserCommand:
		return c.User
	}
	t.Fatalf("unexpected last step %T", st.Command)
	return ""
}

// TestExpandWithBaseEnv checks the expansion rules against a base image's
// environment, which only the builder knows.
func TestExpandWithBaseEnv(t *testing.T) {
	goEnv := []string{"PATH=/usr/local/go/bin:/usr/bin", "GOPATH=/go"}
	tests := []struct {
		name      string
		src       string
		baseEnv   []string
		buildArgs map[string]string
		want      string
	}{
		{"ENV appends to the image's PATH", "FROM golang\nENV PATH=/go/bin:$PATH", goEnv, nil, "/go/bin:/usr/local/go/bin:/usr/bin"},
		{"WORKDIR uses an image variable", "FROM golang\nWORKDIR $GOPATH/src", goEnv, nil, "/go/src"},
		{"PATH defaults when the image has none", "FROM x\nENV P=$PATH", nil, nil, DefaultPathEnv},
		{"unknown variable is empty", "FROM x\nLABEL l=[$NOPE]", goEnv, nil, "[]"},
		{"stage ENV shadows image ENV", "FROM golang\nENV GOPATH=/mine\nUSER $GOPATH", goEnv, nil, "/mine"},
		{"ARG default overrides image ENV for expansion", "FROM golang\nARG GOPATH=/arg\nUSER $GOPATH", goEnv, nil, "/arg"},
		{"ENV after ARG shadows it", "FROM golang\nARG V=arg\nENV V=env\nUSER $V", nil, nil, "env"},
		{"build arg wins over default", "FROM x\nARG V=default\nUSER $V", nil, map[string]string{"V": "cli"}, "cli"},
		{"global ARG invisible until redeclared", "ARG G=global\nFROM x\nUSER [$G]", nil, nil, "[]"},
		{"redeclared global ARG takes its value", "ARG G=global\nFROM x\nARG G\nUSER $G", nil, nil, "global"},
		{"global ARG with build arg", "ARG G=global\nFROM x\nARG G\nUSER $G", nil, map[string]string{"G": "cli"}, "cli"},
		{"predefined arg needs declaring", "FROM x\nARG TARGETARCH\nUSER $TARGETARCH", nil, nil, "amd64"},
		{"ENV pairs see the env before the line", "FROM x\nENV A=1\nENV A=2 B=$A", nil, nil, "1"},
		{"single quotes are literal", "FROM x\nENV A=1 B='$A'", nil, nil, "$A"},
		{"escaped dollar is literal", "FROM x\nENV A=1 B=\\$A", nil, nil, "$A"},
		{"default modifier", "FROM x\nENV B=${UNSET:-fallback}", nil, nil, "fallback"},
		{"alternative modifier", "FROM x\nENV A=1 B=${A:+alt}", nil, nil, ""},
		{"suffix removal", "FROM x\nARG F=app.tar.gz\nENV B=${F%%.*}", nil, nil, "app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustParse(t, tt.src, tt.buildArgs)
			x, err := g.Target.Expand(ImageState(tt.baseEnv, nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := lastValue(t, x.Steps[len(x.Steps)-1]); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRunSeesArgsAndEnv checks the environment and build args handed to
// RUN, which the shell (not Strata) expands.
func TestRunSeesArgsAndEnv(t *testing.T) {
	g := mustParse(t, "FROM x\nARG A=1\nENV B=2\nARG C\nRUN echo $A $B\nENV D=3", nil)
	x, err := g.Target.Expand(ImageState([]string{"PATH=/bin"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	run := x.Steps[3]
	c, ok := run.Command.(*instructions.RunCommand)
	if !ok {
		t.Fatalf("step 3 is %T", run.Command)
	}
	if got := c.CmdLine[0]; got != "echo $A $B" {
		t.Errorf("RUN was expanded by Strata: %q", got)
	}
	if want := []string{"PATH=/bin", "A=1", "B=2"}; !slices.Equal(run.Env, want) {
		t.Errorf("RUN env %q, want %q", run.Env, want)
	}
	if want := []Arg{{"A", "1", true}, {Key: "C"}}; !slices.Equal(run.Args, want) {
		t.Errorf("RUN args %v, want %v", run.Args, want)
	}
	if want := []string{"PATH=/bin", "A=1", "B=2", "D=3"}; !slices.Equal(x.End.Env, want) {
		t.Errorf("end env %q, want %q", x.End.Env, want)
	}
}

// TestExpandChainsStages checks that a stage built FROM another starts
// from that stage's End: its env, args and ONBUILD triggers.
func TestExpandChainsStages(t *testing.T) {
	g := mustParse(t, "FROM img AS a\nARG V=1\nONBUILD RUN echo $V\nFROM a\nLABEL v=$V", nil)
	a, err := g.Stages[0].Expand(ImageState(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Stages[1].Expand(a.End)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Steps) != 2 || !b.Steps[0].OnBuild {
		t.Fatalf("want the inherited trigger first, got %d steps", len(b.Steps))
	}
	if b.Steps[0].Location.Line != 4 {
		t.Errorf("trigger located at line %d, want the FROM line 4", b.Steps[0].Location.Line)
	}
	if got := lastValue(t, b.Steps[1]); got != "1" {
		t.Errorf("inherited ARG: got %q, want 1", got)
	}
	if len(b.End.OnBuild) != 0 {
		t.Errorf("triggers carried over to the child's image: %q", b.End.OnBuild)
	}
}

// TestImageTriggers checks ONBUILD triggers of a pulled base image: they
// run first, located at the FROM line, and are checked like any step.
func TestImageTriggers(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		trigger string
		wantErr string
	}{
		{"copy from a kept stage", "FROM alpine AS tools\nFROM base\nCOPY --from=tools /x /x", "COPY --from=tools /a /b", ""},
		{"copy from a pruned stage", "FROM alpine AS tools\nFROM base", "COPY --from=tools /a /b", `Dockerfile:2: ONBUILD trigger "COPY --from=tools /a /b" of the base: COPY --from=tools: stage tools is not part of this build`},
		{"unsupported flag", "FROM base", "RUN --device=x true", `Dockerfile:1: ONBUILD trigger "RUN --device=x true" of the base: RUN --device: not supported by strata yet (BuildKit's --device names CDI devices and Strata reads no CDI specs, so the sandbox gives a step no host device: build this step with docker buildx and --allow device)`},
		{"not an instruction", "FROM base", "NOPE x", `Dockerfile:1: ONBUILD trigger "NOPE x" of the base: unknown instruction: NOPE (did you mean COPY?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustParse(t, tt.src, nil)
			x, err := g.Target.Expand(ImageState(nil, []string{tt.trigger}))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			first := x.Steps[0]
			if !first.OnBuild || first.Location.Line != g.Target.Location.Line {
				t.Errorf("trigger step %+v: want OnBuild at line %d", first, g.Target.Location.Line)
			}
			if want := (Source{Kind: SourceStage, Stage: 0}); first.From != want {
				t.Errorf("trigger COPY --from resolved to %v, want %v", first.From, want)
			}
		})
	}
}

func TestStepResolution(t *testing.T) {
	g := mustParse(t, `FROM alpine AS build
FROM scratch
COPY --from=build --chmod=4755 /a /a
ADD --chmod=600 f /f
RUN --mount=type=cache,target=/c --mount=from=build,target=/b --mount=target=/ctx true`, nil)
	steps := g.Target.Steps
	if want := (Source{Kind: SourceStage, Stage: 0}); steps[0].From != want {
		t.Errorf("COPY --from = %v, want %v", steps[0].From, want)
	}
	if m := steps[0].Mode; m == nil || *m != fs.ModeSetuid|0o755 {
		t.Errorf("COPY --chmod=4755 = %v", m)
	}
	if m := steps[1].Mode; m == nil || *m != 0o600 {
		t.Errorf("ADD --chmod=600 = %v", m)
	}
	want := []SourceKind{SourceScratch, SourceStage, SourceContext}
	for i, m := range steps[2].Mounts {
		if m.From.Kind != want[i] {
			t.Errorf("mount %d (%s) from %v, want kind %d", i, m.Target, m.From, want[i])
		}
	}
}

// TestImageEnvDecidesValues checks values a preview cannot judge because
// the base image's ENV decides them: Parse accepts them and Expand, given
// the image's State, gives what BuildKit gives.
func TestImageEnvDecidesValues(t *testing.T) {
	g := mustParse(t, "FROM node\nARG PORT\nEXPOSE ${PORT:-3000}\nEXPOSE $PORT\nCOPY --chmod=$M a /a\nSTOPSIGNAL $SIG\nRUN --mount=type=cache,target=/c,uid=${U:-7} true", nil)
	tests := []struct {
		name      string
		env       []string
		wantPorts [2][]string
		wantMode  fs.FileMode
		wantErr   string
	}{
		{"image defines nothing", []string{"SIG=TERM"}, [2][]string{{"3000/tcp"}, nil}, 0, ""},
		{"image defines PORT and M", []string{"PORT=80", "M=0755", "SIG=9"}, [2][]string{{"80/tcp"}, {"80/tcp"}}, 0o755, ""},
		{"image PORT is not a port", []string{"PORT=http"}, [2][]string{}, 0, `Dockerfile:3: EXPOSE: invalid port "http": "http" is not a port number (0-65535)`},
		{"image M is not a mode", []string{"M=999"}, [2][]string{}, 0, "Dockerfile:5: invalid chmod parameter: '999'. it should be octal string and between 0 and 07777"},
		{"image SIG is not a signal", []string{"SIG=NOPE"}, [2][]string{}, 0, "Dockerfile:6: STOPSIGNAL: invalid signal: NOPE"},
		{"image U is not a uid", []string{"SIG=9", "U=app"}, [2][]string{}, 0, "Dockerfile:7: invalid value app for uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := g.Target.Expand(ImageState(tt.env, nil))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.wantPorts {
				if got := x.Steps[1+i].Ports; !slices.Equal(got, want) {
					t.Errorf("EXPOSE on line %d: ports %q, want %q", 3+i, got, want)
				}
			}
			if m := x.Steps[3].Mode; (m == nil) != (tt.wantMode == 0) || m != nil && *m != tt.wantMode {
				t.Errorf("COPY --chmod=$M: mode %v, want %v", m, tt.wantMode)
			}
			if m := x.Steps[5].Mounts; len(m) != 1 || m[0].UID == nil || *m[0].UID != 7 {
				t.Errorf("RUN --mount uid=${U:-7}: mounts %+v, want uid 7", m)
			}
		})
	}
}

func TestImageState(t *testing.T) {
	if got := ImageStateFor("windows", nil, nil).Env; len(got) != 0 {
		t.Errorf("windows image: got %q, want PATH left to the OS", got)
	}
	if got := ImageState([]string{"A=1"}, nil).Env; !slices.Equal(got, []string{"A=1", "PATH=" + DefaultPathEnv}) {
		t.Errorf("no PATH: got %q", got)
	}
	if got := ImageState([]string{"PATH=/x"}, nil).Env; !slices.Equal(got, []string{"PATH=/x"}) {
		t.Errorf("own PATH: got %q", got)
	}
}

func TestParseChmod(t *testing.T) {
	tests := []struct {
		in      string
		want    fs.FileMode
		wantErr bool
	}{
		{"755", 0o755, false},
		{"0644", 0o644, false},
		{"1777", fs.ModeSticky | 0o777, false},
		{"2755", fs.ModeSetgid | 0o755, false},
		{"7777", fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o777, false},
		{"10000", 0, true},
		{"0999", 0, true},
		{"-1", 0, true},
		{"u+x", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseChmod(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseChmod(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err == nil && octalMode(got) != octalFromString(t, tt.in) {
				t.Errorf("octalMode does not round-trip %q: %o", tt.in, octalMode(got))
			}
		})
	}
}

func octalFromString(t *testing.T, s string) uint32 {
	var v uint32
	for _, c := range s {
		v = v*8 + uint32(c-'0')
	}
	return v
}

func TestChownByName(t *testing.T) {
	tests := map[string]bool{"": false, "0": false, "10:20": false, "app": true, "app:0": true, "0:staff": true}
	for in, want := range tests {
		if got := chownByName(in); got != want {
			t.Errorf("chownByName(%q) = %t, want %t", in, got, want)
		}
	}
}

// TestExpandConcurrently checks that expanding leaves the graph as it was,
// so the builder can expand independent stages in parallel (run with -race).
func TestExpandConcurrently(t *testing.T) {
	g := mustParse(t, "FROM x\nARG A=1\nENV B=$A\nCOPY --chmod=644 a /$B\nRUN --mount=type=cache,target=/$A true", nil)
	results := make(chan string, 4)
	for range 4 {
		go func() {
			x, err := g.Target.Expand(ImageState([]string{"A=0"}, nil))
			if err != nil {
				results <- err.Error()
				return
			}
			results <- x.Steps[2].Command.(*instructions.CopyCommand).DestPath
		}()
	}
	for range 4 {
		if got := <-results; got != "/1" {
			t.Errorf("got %q, want /1", got)
		}
	}
	if got := g.Target.Steps[2].Command.(*instructions.CopyCommand).DestPath; got != "/1" {
		t.Errorf("preview changed to %q", got)
	}
}

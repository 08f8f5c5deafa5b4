package dockerfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// TestUnsupportedTable has a Dockerfile for every row of the support
// table: Parse, before anything is built, refuses it at the line of the
// offending instruction, naming the row's feature and wrapping
// ErrNotSupported. A supported instruction before it and a second
// offending instruction after it check that the first one is named.
func TestUnsupportedTable(t *testing.T) {
	tests := []struct {
		feature string
		src     string // the offending instruction
	}{
		{"RUN --device", "RUN --device=nvidia.com/gpu=all nvidia-smi"},
		{"RUN --security=insecure", "RUN --security=insecure mount -t tmpfs none /mnt"},
		{"RUN --security=insecure", "RUN --mount=type=tmpfs,target=/t --mount=type=secret,id=token --security=insecure true"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.feature] = true
		// On scratch the preview is exact; on an image it keeps the
		// variables the image may define: both judge literal values.
		for _, base := range []string{"scratch", "alpine"} {
			t.Run(base+"/"+tt.src, func(t *testing.T) {
				// Line 4 is the offending instruction, or the one after an ARG.
				line := 4 + strings.Count(tt.src, "\n")
				src := "FROM alpine AS tools\nFROM " + base + "\nRUN echo supported\n" + tt.src + "\nRUN --device=x true\n"
				g, err := Parse([]byte(src), Options{File: "Dockerfile"})
				if g != nil || err == nil {
					t.Fatalf("Parse accepted\n%s", src)
				}
				var de *Error
				if !errors.As(err, &de) || de.Line != line {
					t.Errorf("error %v, want it at Dockerfile:%d", err, line)
				}
				if !errors.Is(err, ErrNotSupported) {
					t.Errorf("error %v does not wrap ErrNotSupported", err)
				}
				if want := tt.feature + ": not supported by strata yet ("; !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want it to name %q", err, want)
				}
			})
		}
	}
	for _, f := range unsupported {
		if f.name != "" && !covered[f.name] {
			t.Errorf("no test Dockerfile uses %s", f.name)
		}
	}
}

// TestUnsupportedScope checks which instructions the table judges: every
// step of the stages the target needs, ONBUILD triggers when a stage of the
// build inherits them, and nothing BuildKit refuses itself.
func TestUnsupportedScope(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		target string
		want   string // "" when Parse accepts
	}{
		{"first offending stage wins", "FROM alpine AS a\nRUN --security=insecure true\nFROM alpine\nRUN --device=x true\nCOPY --from=a / /\n", "",
			"Dockerfile:2: RUN --security=insecure: not supported"},
		{"first flag of an instruction", "FROM alpine\nRUN --device=x --mount=type=secret,id=s true\n", "",
			"Dockerfile:2: RUN --device: not supported"},
		{"pruned stage is not judged", "FROM alpine AS gpu\nRUN --device=x true\nFROM alpine AS app\nRUN true\n", "app", ""},
		{"ONBUILD of the target is only recorded", "FROM alpine\nONBUILD RUN --security=insecure true\n", "", ""},
		{"ONBUILD inherited by a stage", "FROM alpine AS base\nONBUILD RUN --security=insecure true\nFROM base\nRUN true\n", "",
			`Dockerfile:3: ONBUILD trigger "RUN --security=insecure true" of the base: RUN --security=insecure: not supported`},
		{"secret and ssh mounts", "FROM alpine\nRUN --mount=type=secret,id=s --mount=type=ssh,required=true true\n", "", ""},
		{"other flags of a RUN waiting for the image ENV", "FROM alpine\nRUN --security=insecure --mount=type=cache,target=/c,uid=$U true\n", "",
			"Dockerfile:2: RUN --security=insecure: not supported"},
		{"mount next to one waiting for the image ENV", "FROM alpine\nRUN --mount=type=cache,target=/c,uid=$U --mount=type=bind,target=/t,mode=0700 true\n", "",
			`Dockerfile:2: mode not allowed for "bind" type mounts`},
		{"writable binds", "FROM alpine AS tools\nFROM alpine\nRUN --mount=type=bind,target=/s,rw --mount=type=bind,from=tools,target=/t,readwrite=true true\n", "", ""},
		{"cache from= and source=", "FROM alpine AS tools\nFROM alpine\nRUN --mount=type=cache,target=/c,from=tools,source=/var/cache --mount=type=cache,target=/d,source=sub true\n", "", ""},
		{"BuildKit's error first", "FROM alpine\nRUN --mount=type=secret,id=s,from=x true\n", "",
			"Dockerfile:2: secret mount should not have a from"},
		{"BuildKit's check of the instruction first", "FROM alpine\nCOPY --link --chown=app --chmod=u+x a /\n", "",
			"Dockerfile:2: --chown=app: user and group names can't be resolved when used with --link"},
		{"octal chmod", "FROM alpine\nCOPY --chmod=0755 a /\n", "", ""},
		{"symbolic chmod", "FROM alpine\nCOPY --chmod=u+x,g-w a /\nADD --chmod=a=rX b /\n", "", ""},
		{"bad symbolic chmod", "FROM alpine\nCOPY --chmod=u+q a /\n", "", "Dockerfile:2: invalid chmod parameter: 'u+q': invalid syntax"},
		{"read-only bind", "FROM alpine\nRUN --mount=type=bind,target=/s,rw=false --mount=target=/t,ro true\n", "", ""},
		{"sha256 checksum", "FROM alpine\nADD --checksum=sha256:" + strings.Repeat("0", 64) + " https://example.com/a /a\n", "", ""},
		{"sha384 and sha512 checksums", "FROM alpine\nADD --checksum=sha384:" + strings.Repeat("0", 96) + " https://example.com/a /a\nADD --checksum=sha512:" + strings.Repeat("0", 128) + " https://example.com/b /b\n", "", ""},
		{"start interval", "FROM alpine\nHEALTHCHECK --start-interval=2s CMD true\n", "", ""},
		{"image ENV may define the mode", "FROM alpine\nCOPY --chmod=$M a /\n", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), Options{File: "Dockerfile", Target: tt.target})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if notSupported := strings.Contains(tt.want, "not supported"); errors.Is(err, ErrNotSupported) != notSupported {
				t.Errorf("errors.Is(ErrNotSupported) = %t, want %t", !notSupported, notSupported)
			}
		})
	}
}

// TestUnsupportedFromImage checks the values only the base image can
// decide, and the ONBUILD triggers of its config: Stage.Expand refuses them
// with the image's State, before the builder runs a step of the stage.
func TestUnsupportedFromImage(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		env     []string
		onBuild []string
		want    string
	}{
		{"trigger", "FROM base\nRUN true\n", nil, []string{"RUN --security=insecure true"},
			`Dockerfile:1: ONBUILD trigger "RUN --security=insecure true" of the base: RUN --security=insecure: not supported`},
		{"second trigger", "FROM base\n", nil, []string{"ENV A=1", "RUN --device=x true"},
			`Dockerfile:1: ONBUILD trigger "RUN --device=x true" of the base: RUN --device: not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Parse([]byte(tt.src), Options{File: "Dockerfile"})
			if err != nil {
				t.Fatalf("Parse refused what only the image decides: %v", err)
			}
			_, err = g.Target.Expand(ImageState(tt.env, tt.onBuild))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, ErrNotSupported) {
				t.Fatalf("Expand: %v, want %q wrapping ErrNotSupported", err, tt.want)
			}
		})
	}
}

// newInstruction is an instruction kind this BuildKit does not have.
type newInstruction struct{}

func (newInstruction) Name() string             { return "frobnicate" }
func (newInstruction) Location() []parser.Range { return nil }
func (newInstruction) Comments() []string       { return nil }

// TestUnsupportedInstructionKind checks the row for an instruction kind the
// builder has no code for: BuildKit's parser cannot produce one today, so
// the row is checked directly.
func TestUnsupportedInstructionKind(t *testing.T) {
	var cmd instructions.Command = newInstruction{}
	err := (&expansion{}).check(cmd, cmd, nil)
	if err == nil || !errors.Is(err, ErrNotSupported) || !strings.HasPrefix(err.Error(), "FROBNICATE: not supported by strata yet (") {
		t.Errorf("check: %v", err)
	}
}

package dockerfile

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestStageNameCase checks how a stage name written in another case is
// found, against BuildKit v0.34.2 (frontend/dockerfile): AS lower-cases
// the name (instructions.parseBuildStageName); COPY --from, RUN --mount
// from= (also in ONBUILD triggers) and --target look it up lower-cased
// (dockerfile2llb dispatchStates.findStateByName); FROM looks its base up
// with its exact spelling (dispatchStates.addState), so `FROM BUG_stage`
// is an image name, which is invalid because it is not lower-case. The
// expectations were checked by running BuildKit's Dockerfile2LLB on each
// Dockerfile. Stage names print lower-cased, as in BuildKit's progress
// ("[bug_stage 2/2] RUN true").
func TestStageNameCase(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		target string
		// want are lines of the printed graph; wantErr is part of the
		// error, and hint whether it must explain FROM's case rule.
		want    []string
		wantErr string
		hint    bool
	}{
		{
			name: "FROM finds the stage by its lower-case name",
			src:  "FROM alpine AS BUG_stage\nRUN true\nFROM bug_stage\nRUN true\n",
			want: []string{"stage 0 bug_stage (lines 1-2)", "stage 1 stage-1 (lines 3-4)", "  from: stage 0 bug_stage"},
		},
		{
			// BuildKit: failed to parse stage name "BUG_stage": invalid
			// reference format: repository name (library/BUG_stage) must
			// be lowercase.
			name:    "FROM with the AS spelling is an invalid image, with a hint",
			src:     "FROM alpine AS BUG_stage\nRUN true\nFROM BUG_stage\nRUN true\n",
			wantErr: "Dockerfile:3: FROM BUG_stage: not a stage name nor a valid image reference",
			hint:    true,
		},
		{
			name:    "FROM through a global ARG is matched after expansion, case and all",
			src:     "ARG BASE=Bug_Stage\nFROM alpine AS bug_stage\nFROM $BASE\n",
			wantErr: "Dockerfile:3: FROM Bug_Stage: not a stage name nor a valid image reference",
			hint:    true,
		},
		{
			// FROM only sees the stages before it, so a later stage
			// spelled differently earns no hint.
			name:    "FROM of a later stage in another case: no hint",
			src:     "FROM Later AS first\nFROM alpine AS later\n",
			wantErr: "Dockerfile:1: FROM Later: not a stage name nor a valid image reference",
		},
		{
			name:    "FROM of a mixed-case image that is no stage: no hint",
			src:     "FROM alpine AS other\nFROM Busybox\n",
			wantErr: "Dockerfile:2: FROM Busybox: not a stage name nor a valid image reference",
		},
		{
			name: "COPY --from matches any case",
			src:  "FROM alpine AS BUG_stage\nFROM scratch\nCOPY --from=Bug_STAGE /a /b\n",
			want: []string{"  deps: [bug_stage]", `  3: COPY from=stage 0 bug_stage src=["/a"] dest="/b"`},
		},
		{
			name: "RUN --mount from= matches any case",
			src:  "FROM alpine AS BUG_stage\nFROM alpine\nRUN --mount=from=BUG_STAGE,target=/m true\n",
			want: []string{"  deps: [bug_stage]", `  3: RUN mount(type=bind from="stage 0 bug_stage" target="/m" ro) shell=["true"]`},
		},
		{
			// TARGETSTAGE is --target as given (defaultArgs), not the
			// lower-cased name.
			name:   "--target matches any case; TARGETSTAGE keeps its spelling",
			src:    "FROM alpine AS BUG_stage\nARG TARGETSTAGE\nRUN true\nFROM scratch\n",
			target: "BUG_Stage",
			want:   []string{"target: bug_stage", `  TARGETSTAGE="BUG_Stage"`, `  args: [TARGETSTAGE="BUG_Stage"]`},
		},
		{
			name: "ONBUILD triggers of a base stage match any case",
			src: "FROM alpine AS Files\nFROM alpine AS Base\nONBUILD COPY --from=FILES /a /b\n" +
				"ONBUILD RUN --mount=from=fILES,target=/m true\nFROM base\n",
			want: []string{
				"stage 2 stage-2 (lines 5)",
				"  from: stage 1 base",
				"  deps: [files base]",
				`  5: (onbuild trigger) COPY from=stage 0 files src=["/a"] dest="/b"`,
				`  5: (onbuild trigger) RUN mount(type=bind from="stage 0 files" target="/m" ro) shell=["true"]`,
			},
		},
		{
			name:    "COPY --from a mixed-case name that is no stage is an invalid image",
			src:     "FROM alpine AS stage\nFROM alpine\nCOPY --from=Busybox /a /b\n",
			wantErr: "Dockerfile:3: COPY --from=Busybox: not a stage name nor a valid image reference",
		},
		{
			name:    "RUN --mount from= a mixed-case name that is no stage is an invalid image",
			src:     "FROM alpine\nRUN --mount=from=Busybox,target=/m true\n",
			wantErr: "Dockerfile:2: RUN --mount from=Busybox: not a stage name nor a valid image reference",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Parse([]byte(tt.src), Options{Target: tt.target, Platform: testPlatform, BuildPlatform: testPlatform})
			if tt.wantErr != "" {
				var de *Error
				if !errors.As(err, &de) {
					t.Fatalf("error %v (%T), want a *dockerfile.Error containing %q", err, err, tt.wantErr)
				}
				msg := err.Error()
				if !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", msg, tt.wantErr)
				}
				const hint = "(FROM matches stage names case-sensitively, as BuildKit does, and AS " +
					"lower-cases them: use the name bug_stage to build on the stage of line "
				if got := strings.Contains(msg, hint); got != tt.hint {
					t.Errorf("error %q: has the case hint %t, want %t", msg, got, tt.hint)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := g.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(buf.String(), "\n")
			for _, w := range tt.want {
				if !slices.Contains(lines, w) {
					t.Errorf("graph has no line %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

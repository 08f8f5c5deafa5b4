package dockerfile

import (
	"testing"

	"github.com/containerd/platforms"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParsePlatform(t *testing.T) {
	host := platforms.DefaultSpec().Architecture
	tests := []struct {
		in      string
		want    specs.Platform
		wantErr bool
	}{
		{"linux/amd64", specs.Platform{OS: "linux", Architecture: "amd64"}, false},
		{"Linux/x86_64", specs.Platform{OS: "linux", Architecture: "amd64"}, false},
		{"linux/arm64/v8", specs.Platform{OS: "linux", Architecture: "arm64"}, false},
		{"linux/aarch64", specs.Platform{OS: "linux", Architecture: "arm64"}, false},
		{"linux/arm/v7", specs.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, false},
		{"linux", specs.Platform{OS: "linux", Architecture: host}, false},
		{"linux/arm64/v8/extra", specs.Platform{}, true},
		{"linux/amd 64", specs.Platform{}, true},
		{"", specs.Platform{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePlatform(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParsePlatform(%q) error %v, want error %t", tt.in, err, tt.wantErr)
			}
			if err == nil && (got.OS != tt.want.OS || got.Architecture != tt.want.Architecture || got.Variant != tt.want.Variant) {
				t.Errorf("ParsePlatform(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestDuplicateStageNames checks that a name used twice resolves as in
// BuildKit: FROM sees the last stage before it, COPY --from and --target
// the last in the file.
func TestDuplicateStageNames(t *testing.T) {
	src := "FROM a AS build\nFROM build AS build\nFROM scratch\nCOPY --from=build / /\n"
	g := mustParse(t, src, nil)
	if got := g.Stage(1).Base; got != (Source{Kind: SourceStage, Stage: 0}) {
		t.Errorf("FROM build resolved to %v, want stage 0", got)
	}
	if got := g.Target.Steps[0].From; got != (Source{Kind: SourceStage, Stage: 1}) {
		t.Errorf("COPY --from=build resolved to %v, want stage 1", got)
	}
	if len(g.Warnings) != 1 || g.Warnings[0].Rule != "DuplicateStageName" || g.Warnings[0].Line != 2 {
		t.Errorf("warnings %+v, want one DuplicateStageName on line 2", g.Warnings)
	}
	g, err := Parse([]byte(src), Options{Target: "build", Platform: testPlatform, BuildPlatform: testPlatform})
	if err != nil {
		t.Fatal(err)
	}
	if g.Target.Index != 1 {
		t.Errorf("--target build is stage %d, want 1", g.Target.Index)
	}
}

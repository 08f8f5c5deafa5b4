package main

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/attest"
	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
)

// buildRun is what the attestations need to know of this invocation
// beyond the flags.
type buildRun struct {
	dockerfile []byte // the Dockerfile's content
	dfName     string // as -f gave it, "Dockerfile" by default
	remote     string // a git or https context's URL, "" for a directory
	buildArgs  map[string]string
	started    time.Time
}

// attestations are the attestation manifests of results (one per image,
// in the index after the images, as BuildKit puts them) and, with
// --attest-referrers, the same statements as OCI 1.1 referrers.
func (o *buildOptions) attestations(ctx context.Context, all []builder.Options, results []*builder.Result) ([]builder.Attached, []v1.Image, error) {
	if !o.attest.any() {
		return nil, nil, nil
	}
	finished := time.Now().UTC().Truncate(time.Second)
	started := o.run.started.UTC().Truncate(time.Second)
	if e := all[0].Epoch; e != nil {
		// Byte-stable attestations: no clock in them.
		started, finished = e.UTC(), e.UTC()
	}
	var attached []builder.Attached
	var referrers []v1.Image
	names := o.subjectNames()
	for i, res := range results {
		platform := platforms.Format(all[i].Graph.Platform)
		subjects, err := attest.Subjects(names, platform, res.Descriptor.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("attestations: %w", err)
		}
		var statements []attest.Statement
		if o.attest.provenance != "" {
			info := o.buildInfo(all[i], res, started, finished)
			st, err := attest.Provenance(subjects, info)
			if err != nil {
				return nil, nil, fmt.Errorf("provenance for %s: %w", platform, err)
			}
			statements = append(statements, st)
		}
		if o.attest.sbom {
			st, err := attest.SBOM(ctx, subjects, res.Image, attest.SBOMOptions{Created: finished, Creator: "strata-" + strataVersion()})
			if err != nil {
				return nil, nil, fmt.Errorf("SBOM for %s: %w", platform, err)
			}
			statements = append(statements, st)
		}
		img, desc, err := attest.Manifest(res.Descriptor, statements...)
		if err != nil {
			return nil, nil, err
		}
		attached = append(attached, builder.Attached{Image: img, Descriptor: desc})
		if o.attest.referrers {
			r, err := attest.Referrer(res.Descriptor, statements...)
			if err != nil {
				return nil, nil, err
			}
			referrers = append(referrers, r)
		}
	}
	return attached, referrers, nil
}

// subjectNames are the names the image is exported under, each once: the
// -t tags, then the outputs' name= (BuildKit names its subjects after its
// exporters' names). A name that is no image reference names no subject.
func (o *buildOptions) subjectNames() []string {
	names := slices.Clone(o.tags)
	outs, _ := o.parseOutputs() // checked before the build
	for _, out := range outs {
		for _, n := range out.Names {
			if _, err := name.NewTag(n); err == nil && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// buildInfo is what provenance records of one platform's build.
func (o *buildOptions) buildInfo(opts builder.Options, res *builder.Result, started, finished time.Time) attest.BuildInfo {
	g := opts.Graph
	info := attest.BuildInfo{
		BuilderID:      o.attest.builderID,
		Mode:           o.attest.provenance,
		SLSAVersion:    o.attest.version,
		Context:        o.run.remote,
		ContextDigest:  o.contextCommit,
		DockerfileName: o.run.dfName,
		Dockerfile:     o.run.dockerfile,
		Args:           o.run.buildArgs,
		Labels:         opts.Labels,
		Target:         o.target,
		BuildPlatform:  platforms.Format(g.BuildPlatform),
		TargetPlatform: platforms.Format(g.Platform),
		Started:        started,
		Finished:       finished,
		Reproducible:   o.attest.reproducible,
		NetworkAccess:  opts.Network != executor.NetworkNone && hasRun(g),
	}
	for name, c := range opts.Contexts {
		if c.Dir != "" {
			info.Locals = append(info.Locals, name)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(opts.Secrets)) {
		info.Secrets = append(info.Secrets, attest.MountRef{ID: id})
	}
	for _, id := range slices.Sorted(maps.Keys(opts.SSH)) {
		info.SSH = append(info.SSH, attest.MountRef{ID: id})
	}
	for _, s := range res.Sources {
		switch s.Kind {
		case "image":
			h, err := v1.NewHash(s.Digest)
			if err != nil {
				continue
			}
			if m, err := attest.ImageMaterial(s.Ref, h, s.Platform); err == nil {
				info.Materials = append(info.Materials, m)
			}
		default:
			algo, hex, _ := strings.Cut(s.Digest, ":")
			info.Materials = append(info.Materials, attest.Material{URI: s.Ref, Digest: map[string]string{algo: hex}})
		}
	}
	if o.attest.provenance == "max" {
		info.Steps = definitionSteps(g, res.Sources)
	}
	return info
}

// hasRun reports whether the graph has a RUN step.
func hasRun(g *dockerfile.Graph) bool {
	for _, st := range g.Stages {
		for _, s := range st.Steps {
			if _, ok := s.Command.(*instructions.RunCommand); ok {
				return true
			}
		}
	}
	return false
}

// definitionSteps is mode=max's build definition: for each stage, its
// source (pinned, as BuildKit's, to the digest the build resolved it to),
// then its RUN, COPY and ADD steps, each reading the one before it (and
// COPY --from the other stage's last step).
func definitionSteps(g *dockerfile.Graph, sources []builder.Source) []attest.Step {
	pins := map[string]string{} // "ref platform" -> manifest digest
	for _, s := range sources {
		if s.Kind == "image" {
			pins[s.Ref+" "+s.Platform] = s.Digest
		}
	}
	var steps []attest.Step
	last := map[int]int{} // stage index -> its last step's index
	for _, st := range g.Stages {
		prev := -1
		switch st.Base.Kind {
		case dockerfile.SourceImage:
			platform := st.Platform
			if platform == "" {
				platform = platforms.Format(g.Platform)
			}
			id := imageIdentifier(st.Base.Image, pins[st.Base.Image+" "+platform])
			steps = append(steps, attest.Step{Source: id, StartLine: st.Location.Line, EndLine: st.Location.Line})
			prev = len(steps) - 1
		case dockerfile.SourceStage:
			if i, ok := last[st.Base.Stage]; ok {
				prev = i
			}
		}
		inputs := func(extra ...int) []int {
			var in []int
			if prev >= 0 {
				in = append(in, prev)
			}
			return append(in, extra...)
		}
		for _, s := range st.Steps {
			step := attest.Step{StartLine: s.Location.Line, EndLine: s.Location.EndLine}
			switch c := s.Command.(type) {
			case *instructions.RunCommand:
				if c.PrependShell {
					step.Args = []string{"/bin/sh", "-c", strings.Join(c.CmdLine, " ")}
				} else {
					step.Args = slices.Clone(c.CmdLine)
				}
				step.Inputs = inputs()
			case *instructions.CopyCommand:
				step.CopySrc, step.CopyDest = slices.Clone(c.SourcePaths), c.DestPath
				var from []int
				if s.From.Kind == dockerfile.SourceStage {
					if i, ok := last[s.From.Stage]; ok {
						from = append(from, i)
					}
				}
				step.Inputs = inputs(from...)
			case *instructions.AddCommand:
				step.CopySrc, step.CopyDest = slices.Clone(c.SourcePaths), c.DestPath
				step.Inputs = inputs()
			default:
				continue
			}
			steps = append(steps, step)
			prev = len(steps) - 1
		}
		if prev >= 0 {
			last[st.Index] = prev
		}
	}
	return steps
}

// imageIdentifier is BuildKit's source identifier of an image: the
// normalized reference, pinned to digest when it is not already.
func imageIdentifier(ref, digest string) string {
	base, pinned, hasDigest := strings.Cut(ref, "@")
	t, err := name.NewTag(base)
	if err != nil {
		return "docker-image://" + ref
	}
	reg := t.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	id := "docker-image://" + reg + "/" + t.RepositoryStr()
	if !hasDigest || strings.Contains(base[strings.LastIndex(base, "/")+1:], ":") {
		id += ":" + t.TagStr() // a digest alone gets no default tag
	}
	if hasDigest {
		digest = pinned
	}
	if digest != "" {
		id += "@" + digest
	}
	return id
}

// strataVersion is the binary's module version and commit, as the Go
// toolchain recorded them.
func strataVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}

// dockerfileLabel is the Dockerfile's name as provenance shows it: the
// -f path's base name, as buildx sends it.
func dockerfileLabel(name string) string {
	if name == "" || name == "-" {
		return "Dockerfile"
	}
	return filepath.Base(name)
}

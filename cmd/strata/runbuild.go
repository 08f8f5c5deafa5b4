package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// runBuild builds the image and writes it where the flags say.
func runBuild(cmd *cobra.Command, o *buildOptions, contextArg string) (err error) {
	ctx := cmd.Context()
	disp, err := o.newDisplay(cmd)
	if err != nil {
		return err
	}
	// Ended before main prints the error: a live view's last frame first.
	defer func() { disp.Close(outcome(ctx, err)) }()
	opts, err := o.builderOptions(disp)
	if err != nil {
		return err
	}
	outputs, err := o.parseOutputs()
	if err != nil {
		return err
	}
	if err := checkStdoutOutputs(cmd, outputs); err != nil {
		return err
	}
	cf, err := o.parseCacheFlags(opts.Compression)
	if err != nil {
		return err
	}
	for i := range outputs {
		outputs[i].Progress = disp
		outputs[i].Annotations = opts.Annotations
	}
	if o.checkRepro {
		if len(outputs) == 0 && len(o.tags) > 0 {
			return fmt.Errorf("--check-repro builds in scratch stores and tags nothing: add -o to keep the image")
		}
		if opts.Epoch == nil {
			zero := time.Unix(0, 0).UTC()
			opts.Epoch = &zero
			disp.Event(progress.Message{Text: "check-repro: SOURCE_DATE_EPOCH is not set; both builds use 0"})
		}
	}
	st, err := openStore(o.root)
	if err != nil {
		return err
	}
	defer st.Close()
	contextDir, src, cleanup, err := readContext(cmd, o, contextArg)
	if err != nil {
		return err
	}
	defer cleanup()
	dfName := o.dockerfileName(contextDir)
	if contextArg == "-" {
		// Messages name the Dockerfile; stdin's temporary directory means
		// nothing to the user.
		dfName = strings.Replace(dfName, contextDir, "<stdin>", 1)
	}
	dfOpts, err := o.dockerfileOptions(dfName)
	if err != nil {
		return err
	}
	graphs, err := o.graphs(src, dfOpts)
	if err != nil {
		return err
	}
	o.run = buildRun{dockerfile: src, dfName: dockerfileLabel(o.file), buildArgs: dfOpts.BuildArgs, started: time.Now()}
	if isRemoteArg(contextArg) {
		o.run.remote = contextArg
	}
	opts.Graph = graphs[0]
	opts.ExplicitPlatform = len(o.platforms) > 0
	unusedBuildArgs(opts.Graph, disp, dfOpts.BuildArgs)
	opts.ContextDir = contextDir
	if opts.Dockerignore, err = dockerfileIgnore(o, contextArg); err != nil {
		return err
	}
	if o.checkRepro {
		st.Close()
		return o.checkReproducible(cmd, perPlatform(opts, graphs), outputs)
	}
	opts.Store = st
	// Layers of bases and imported caches download into the store only
	// when something reads them; outputs written after the build may.
	blobs := registry.NewBlobs(ctx, st, opts.Registry, disp)
	opts.Blobs = blobs
	all := perPlatform(opts, graphs)
	for i := range all {
		cf.setUp(ctx, &all[i], st, blobs, disp)
	}
	if !o.wantsIndex() {
		res, err := builder.Build(ctx, all[0])
		if err != nil {
			return withRootlessHint(err)
		}
		if err := o.deliver(cmd, st, res, outputs); err != nil {
			return err
		}
		return cf.export(ctx, res, blobs, disp)
	}
	results, err := builder.BuildPlatforms(ctx, all)
	if err != nil {
		return withRootlessHint(err)
	}
	ir, referrers, err := o.storeIndex(ctx, st, all, results)
	if err != nil {
		return err
	}
	if err := o.deliverIndex(cmd, st, ir, referrers, outputs); err != nil {
		return err
	}
	return cf.export(ctx, mergedSteps(results), blobs, disp)
}

// perPlatform are opts for each graph, one per target platform.
func perPlatform(opts builder.Options, graphs []*dockerfile.Graph) []builder.Options {
	all := make([]builder.Options, len(graphs))
	for i, g := range graphs {
		all[i] = opts
		all[i].Graph = g
	}
	return all
}

// wantsIndex reports whether the build makes an OCI index: several
// platforms, or attestations beside the image (as buildx).
func (o *buildOptions) wantsIndex() bool {
	return len(o.platforms) > 1 || o.attest.any()
}

// storeIndex stores the index of the platforms' images and their
// attestations.
func (o *buildOptions) storeIndex(ctx context.Context, st *store.Store, all []builder.Options, results []*builder.Result) (*builder.IndexResult, []v1.Image, error) {
	attached, referrers, err := o.attestations(ctx, all, results)
	if err != nil {
		return nil, nil, err
	}
	ir, err := builder.StoreIndex(ctx, st, results, attached, all[0].Annotations)
	return ir, referrers, err
}

// mergedSteps are the steps and cache mounts of every platform's build,
// each once, for the cache export (the keys include the platform).
func mergedSteps(results []*builder.Result) *builder.Result {
	merged := &builder.Result{}
	steps := map[string]int{}
	mounts := map[string]bool{}
	for _, r := range results {
		for _, s := range r.Steps {
			if i, ok := steps[s.Key]; ok {
				merged.Steps[i].InTarget = merged.Steps[i].InTarget || s.InTarget
				continue
			}
			steps[s.Key] = len(merged.Steps)
			merged.Steps = append(merged.Steps, s)
		}
		for _, m := range r.Mounts {
			if !mounts[m.ID] {
				mounts[m.ID] = true
				merged.Mounts = append(merged.Mounts, m)
			}
		}
	}
	return merged
}

// checkReproducible builds twice, each time in a scratch store of its own
// and the second with the cache off, compares the two images (of every
// platform) and names the first difference. The outputs get the first
// build's image when the two are the same.
func (o *buildOptions) checkReproducible(cmd *cobra.Command, all []builder.Options, outputs []builder.Output) error {
	scratch, err := os.MkdirTemp("", "strata-check-repro-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	sink := all[0].Progress
	var results [2][]*builder.Result
	var stores [2]*store.Store
	for i := range results {
		st, err := store.Open(filepath.Join(scratch, fmt.Sprintf("store-%d", i+1)))
		if err != nil {
			return err
		}
		defer st.Close()
		stores[i] = st
		for j := range all {
			all[j].Store, all[j].NoCache = st, i == 1
		}
		sink.Event(progress.Message{Text: fmt.Sprintf("check-repro: build %d of 2, in a scratch store%s", i+1, map[bool]string{true: ", cache off"}[i == 1])})
		if results[i], err = builder.BuildPlatforms(cmd.Context(), all); err != nil {
			return fmt.Errorf("--check-repro build %d: %w", i+1, err)
		}
	}
	for j := range all {
		first, second := results[0][j], results[1][j]
		diff, err := builder.DiffImages(cmd.Context(), first.Image, second.Image)
		if err != nil {
			return fmt.Errorf("--check-repro: comparing the builds: %w", err)
		}
		if diff != nil {
			return fmt.Errorf("not reproducible%s: %s vs %s: %s", platformNote(all, j), first.Descriptor.Digest, second.Descriptor.Digest, diff)
		}
		sink.Event(progress.Message{Text: "check-repro: reproducible" + platformNote(all, j) + ": both builds gave " + first.Descriptor.Digest.String()})
	}
	for j := range all {
		all[j].Store = stores[0]
	}
	if o.wantsIndex() {
		ir, referrers, err := o.storeIndex(cmd.Context(), stores[0], all, results[0])
		if err != nil {
			return err
		}
		return o.deliverIndex(cmd, stores[0], ir, referrers, outputs)
	}
	return o.deliver(cmd, stores[0], results[0][0], outputs)
}

// platformNote names build j's platform when there are several.
func platformNote(all []builder.Options, j int) string {
	if len(all) < 2 {
		return ""
	}
	return " for " + platforms.Format(all[j].Graph.Platform)
}

// deliver tags, exports and writes the ID files.
func (o *buildOptions) deliver(cmd *cobra.Command, st *store.Store, res *builder.Result, outputs []builder.Output) error {
	if err := builder.Tag(st, res, o.tags); err != nil {
		return err
	}
	for _, out := range outputs {
		out.Stdout = cmd.OutOrStdout()
		if err := builder.Export(cmd.Context(), res.Image, out); err != nil {
			return err
		}
	}
	cfg, _ := res.Image.ConfigName()
	return o.writeIDs(cmd, res.Descriptor, cfg.String(), outputs)
}

// writeIDs writes --iidfile and --metadata-file and prints the image ID
// (desc's digest) unless an archive goes to stdout.
func (o *buildOptions) writeIDs(cmd *cobra.Command, desc v1.Descriptor, configDigest string, outputs []builder.Output) error {
	digest := desc.Digest.String()
	if o.iidFile != "" {
		if err := writeFileReplacing(o.iidFile, []byte(digest)); err != nil {
			return fmt.Errorf("writing --iidfile: %w", err)
		}
	}
	if err := o.writeMetadata(desc, configDigest); err != nil {
		return err
	}
	if !toStdout(outputs) {
		fmt.Fprintln(cmd.OutOrStdout(), digest)
	}
	return nil
}

// deliverIndex tags the index, exports it and writes the ID files: the
// index digest is the image ID, as buildx reports a multi-platform image.
// Referrers (--attest-referrers) are pushed beside the index to every
// registry output.
func (o *buildOptions) deliverIndex(cmd *cobra.Command, st *store.Store, ir *builder.IndexResult, referrers []v1.Image, outputs []builder.Output) error {
	for _, n := range o.tags {
		if err := st.Tag(builder.StoreName(n), ir.Descriptor); err != nil {
			return fmt.Errorf("tagging %s: %w", n, err)
		}
	}
	for _, out := range outputs {
		out.Stdout = cmd.OutOrStdout()
		if err := builder.ExportIndex(cmd.Context(), ir.Index, out); err != nil {
			return err
		}
		if out.Type == "registry" && len(referrers) > 0 {
			if err := builder.PushReferrers(cmd.Context(), referrers, out.Names, out.Registry); err != nil {
				return err
			}
		}
	}
	return o.writeIDs(cmd, ir.Descriptor, "", outputs)
}

// toStdout reports whether an archive goes to stdout (dest=-), which then
// carries nothing else.
func toStdout(outs []builder.Output) bool {
	for _, o := range outs {
		if o.Dest == "-" {
			return true
		}
	}
	return false
}

// writeMetadata writes buildx's metadata file: an index has no config
// digest of its own, as buildx writes none for a multi-platform image.
func (o *buildOptions) writeMetadata(desc v1.Descriptor, configDigest string) error {
	if o.metadataFile == "" {
		return nil
	}
	md := map[string]any{
		"containerimage.digest":     desc.Digest.String(),
		"containerimage.descriptor": desc,
		"image.name":                strings.Join(o.tags, ","),
	}
	if configDigest != "" {
		md["containerimage.config.digest"] = configDigest
	}
	b, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileReplacing(o.metadataFile, append(b, '\n')); err != nil {
		return fmt.Errorf("writing --metadata-file: %w", err)
	}
	return nil
}

// builderOptions turns the flags and the environment into build options.
func (o *buildOptions) builderOptions(sink progress.Sink) (builder.Options, error) {
	var opts builder.Options
	var err error
	if opts.Compression, err = layer.ParseCompression(o.compression); err != nil {
		return opts, err
	}
	if opts.Epoch, err = o.epoch(); err != nil {
		return opts, err
	}
	switch o.network {
	case "default", "":
	case "none":
		opts.Network = executor.NetworkNone
	case "host":
		opts.Network = executor.NetworkHost
	default:
		return opts, fmt.Errorf("--network %q: want default, none or host", o.network)
	}
	for _, a := range o.allow {
		switch a {
		case "network.host":
			opts.AllowHostNetwork = true
		case "security.insecure":
			return opts, fmt.Errorf("--allow security.insecure: not supported: RUN steps always run in the sandbox")
		default:
			return opts, fmt.Errorf("--allow %q: want network.host", a)
		}
	}
	if opts.Labels, err = keyValues("--label", o.labels); err != nil {
		return opts, err
	}
	if err := o.secretFlags.apply(&opts); err != nil {
		return opts, err
	}
	opts.NoCache = o.noCache
	if err := o.parityFlags.apply(&opts); err != nil {
		return opts, err
	}
	opts.ExtraHosts, opts.Ulimits, opts.ShmSize = o.extraHosts, o.limits, o.shmBytes
	opts.ExplainCache = o.explainCache
	opts.Registry = registryConfig(o.insecure)
	opts.Progress = sink
	pids := o.pidsLimit
	if pids <= 0 {
		pids = -1
	}
	iso, err := o.isolationMode()
	if err != nil {
		return opts, err
	}
	opts.Runner = executor.New(executor.Options{Warnings: warningWriter{sink}, PidsLimit: pids, Isolation: iso, Unavailable: runUnavailable()})
	opts.Owners = ownerPolicy()
	return opts, nil
}

// epoch is --source-date-epoch, else $SOURCE_DATE_EPOCH.
func (o *buildOptions) epoch() (*time.Time, error) {
	v := o.sourceDateEpoch
	if v == "" {
		v = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("source date epoch %q: want seconds since 1970", v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

func keyValues(flag string, kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// parseOutputs reads --output and --push.
func (o *buildOptions) parseOutputs() ([]builder.Output, error) {
	var outs []builder.Output
	for _, spec := range o.outputs {
		out := builder.Output{Names: o.tags, Registry: registryConfig(o.insecure), Owners: ownerPolicy()}
		for _, field := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "type":
				out.Type = v
			case "dest":
				out.Dest = v
			case "name":
				out.Names = strings.Split(v, ",")
			default:
				return nil, fmt.Errorf("--output %q: unknown key %q", spec, k)
			}
		}
		if out.Type == "" {
			return nil, fmt.Errorf("--output %q: type= is required", spec)
		}
		outs = append(outs, out)
	}
	if o.push {
		outs = append(outs, builder.Output{Type: "registry", Names: o.tags, Registry: registryConfig(o.insecure)})
	}
	for _, out := range outs {
		if out.Type == "registry" && len(out.Names) == 0 {
			return nil, fmt.Errorf("pushing needs a name: add -t")
		}
	}
	return outs, nil
}

func (o *buildOptions) dockerfileName(contextDir string) string {
	if o.file != "" {
		return o.file
	}
	return filepath.Join(contextDir, "Dockerfile")
}

// readContext returns the context directory and the Dockerfile. For "-",
// stdin is a tar archive (extracted into a temporary directory) or a
// Dockerfile with an empty context.
func readContext(cmd *cobra.Command, o *buildOptions, arg string) (string, []byte, func(), error) {
	noop := func() {}
	if arg != "-" {
		if _, err := os.Stat(arg); err != nil {
			// Not a local path: a git repository or a URL, as in docker build.
			if dir, src, cleanup, ok, rerr := remoteContext(cmd, o, arg); ok {
				return dir, src, cleanup, rerr
			}
			return "", nil, noop, fmt.Errorf("build context: %w", err)
		}
		var src []byte
		var err error
		if o.file == "" {
			// The context's own Dockerfile, its symlinks kept inside the context.
			src, err = builder.ReadContextFile(arg, "Dockerfile")
		} else {
			src, err = readDockerfile(cmd, o.file)
		}
		if err != nil {
			return "", nil, noop, fmt.Errorf("reading Dockerfile: %w", err)
		}
		return arg, src, noop, nil
	}
	dir, err := os.MkdirTemp("", "strata-context-")
	if err != nil {
		return "", nil, noop, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	src, err := tarContext(cmd, o, dir, cmd.InOrStdin(), "stdin")
	if err != nil {
		cleanup()
		return "", nil, noop, err
	}
	return filepath.Join(dir, "ctx"), src, cleanup, nil
}

// dockerfileIgnore reads <Dockerfile name>.dockerignore next to the
// Dockerfile, which docker uses instead of the context's .dockerignore;
// nil when there is none (or the Dockerfile came from stdin).
func dockerfileIgnore(o *buildOptions, contextArg string) (*builder.IgnoreFile, error) {
	var data []byte
	var err error
	name := o.file + ".dockerignore"
	switch {
	case contextArg == "-" || o.file == "-":
		return nil, nil
	case o.file == "":
		// The context's Dockerfile: its ignore file is read as it was.
		name = "Dockerfile.dockerignore"
		data, err = builder.ReadContextFile(contextArg, name)
	default:
		data, err = os.ReadFile(name)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return &builder.IgnoreFile{Name: name, Data: data}, nil
}

// readDockerfile reads the Dockerfile; "-f -" reads it from stdin.
func readDockerfile(cmd *cobra.Command, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	return os.ReadFile(name)
}

// maxContextSize bounds a context read from stdin or a URL, archive and
// extracted files alike; maxDockerfileSize a Dockerfile read from either.
const (
	maxContextSize    = 8 << 30
	maxDockerfileSize = 16 << 20
)

// tarContext reads "-" (stdin) or a context URL's body r through a
// temporary file, never whole in memory. A tar archive, plain or
// compressed (told by its content, not by whether it extracts), is the
// context, and its Dockerfile, or -f's path inside it as docker takes it,
// is read from it; anything else is the Dockerfile itself, with an empty
// context. what names r in messages.
func tarContext(cmd *cobra.Command, o *buildOptions, dir string, r io.Reader, what string) ([]byte, error) {
	f, err := os.CreateTemp(dir, ".stdin-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// Bounded: an endless body (a hostile URL) would fill the disk.
	n, err := io.Copy(f, io.LimitReader(r, maxContextSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if n > maxContextSize {
		return nil, fmt.Errorf("reading %s: larger than %d GiB", what, maxContextSize>>30)
	}
	isTar, err := looksLikeTar(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	ctxDir := filepath.Join(dir, "ctx")
	if !isTar {
		if err := os.Mkdir(ctxDir, 0o755); err != nil {
			return nil, err
		}
		// Read whole into memory: bounded as BuildKit's gRPC message is.
		if n > maxDockerfileSize {
			return nil, fmt.Errorf("reading %s: neither a tar archive nor a Dockerfile (larger than %d MiB)", what, maxDockerfileSize>>20)
		}
		return io.ReadAll(f)
	}
	if _, err := layer.Extract(cmd.Context(), f, ctxDir, layer.ExtractOptions{Mode: layer.Flatten, MaxSize: maxContextSize}); err != nil {
		return nil, fmt.Errorf("reading the context from %s: %w", what, err)
	}
	name := "Dockerfile"
	if o.file != "" {
		name = o.file
	}
	// Resolved inside the context: a symlinked Dockerfile cannot read host
	// files, nor a FIFO the archive made hang the build.
	src, err := builder.ReadContextFile(ctxDir, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s from the context on %s: %w", name, what, err)
	}
	return src, nil
}

// looksLikeTar reports whether f holds a compressed stream (layer's
// detection, by content) or a tar header (the "ustar" magic at offset
// 257), and rewinds f.
func looksLikeTar(f *os.File) (bool, error) {
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	head = head[:n]
	rc, format, _ := layer.Decompress(bytes.NewReader(head))
	if rc != nil {
		rc.Close()
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	return format != layer.FormatPlain || len(head) >= 262 && string(head[257:262]) == "ustar", nil
}

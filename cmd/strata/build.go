package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/platforms"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
)

// buildOptions are `strata build`'s flags, named as docker build names them.
type buildOptions struct {
	tags            []string
	file            string
	buildArgs       []string
	target          string
	labels          []string
	network         string
	noCache         bool
	outputs         []string
	push            bool
	compression     string
	iidFile         string
	metadataFile    string
	progress        string
	root            string
	sourceDateEpoch string
	platform        string
	platforms       []specs.Platform // --platform's list, parsed (parsePlatforms)
	print           bool
	insecure        []string
	pidsLimit       int64
	isolation       string
	checkRepro      bool
	allow           []string
	cacheFrom       []string
	cacheTo         []string
	explainCache    bool
	dockerFlags
	secretFlags
	parityFlags
	foreign foreignValues
	// run is this invocation's, set by runBuild for the attestations.
	run buildRun
}

func newBuildCmd() *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:         "build [flags] CONTEXT",
		Annotations: usesStore,
		Short:       "Build an image from a Dockerfile",
		Long: `Build an image from the Dockerfile in CONTEXT (or the one -f names).
CONTEXT "-" reads a tar archive (the context, plain or compressed; -f then
names a file inside it) or a Dockerfile from stdin.

With -t and no --output the image is tagged in strata's store (see
"strata images"). The image ID written by --iidfile and printed at the end
is the manifest digest, as docker reports it with the containerd image store.
SOURCE_DATE_EPOCH (or --source-date-epoch) fixes every timestamp, so two
builds of the same input give the same digest.

With --print, parse the Dockerfile and print its stage graph (stages, bases,
dependencies, expanded instructions) instead of building.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Before any work: no store opened, no context read.
			if err := o.checkFlags(cmd); err != nil {
				return oneLine(err)
			}
			if o.print {
				return oneLine(printGraph(cmd.OutOrStdout(), &o, args[0]))
			}
			return oneLine(runBuild(cmd, &o, args[0]))
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "name and optionally a tag (name:tag); repeatable")
	f.StringVarP(&o.file, "file", "f", "", "Dockerfile to read (default CONTEXT/Dockerfile)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "build-time variable KEY=VALUE (KEY alone takes it from the environment); repeatable")
	f.StringVar(&o.target, "target", "", "stage to build (default the last)")
	f.StringArrayVar(&o.labels, "label", nil, "image label KEY=VALUE; repeatable")
	f.StringArrayVar(&o.allow, "allow", nil, "allow an entitlement: network.host (RUN --network=host in the Dockerfile); repeatable")
	f.StringVar(&o.network, "network", "default", "network for RUN: default (a namespace of its own, out through slirp4netns), none or host")
	f.BoolVar(&o.noCache, "no-cache", false, "do not use the build cache")
	f.StringArrayVarP(&o.outputs, "output", "o", nil, "output: type=oci|oci-layout|docker|registry|local|tar[,dest=PATH]")
	f.BoolVar(&o.push, "push", false, "push the image to its registry (same as --output=type=registry)")
	f.StringVar(&o.compression, "compression", "gzip", "layer compression: gzip, zstd or none")
	f.StringVar(&o.iidFile, "iidfile", "", "write the image ID (the manifest digest, sha256:...) to this file")
	f.StringVar(&o.metadataFile, "metadata-file", "", "write build metadata (JSON) to this file")
	f.StringVar(&o.progress, "progress", "auto", "progress output: auto (tty on a terminal, else plain), plain, tty, rawjson or quiet; default $BUILDKIT_PROGRESS")
	f.StringVar(&o.root, "root", "", "directory of strata's store and cache (default /var/lib/strata as root, else $XDG_DATA_HOME/strata)")
	f.StringVar(&o.sourceDateEpoch, "source-date-epoch", "", "timestamp for the image and new files (default $SOURCE_DATE_EPOCH)")
	f.StringVar(&o.platform, "platform", "", "target platforms os/arch[/variant], comma-separated: one image each, in an OCI index (default the host's)")
	f.BoolVar(&o.print, "print", false, "print the parsed stage graph instead of building")
	f.BoolVar(&o.checkRepro, "check-repro", false, "build twice in scratch stores (the second without cache) and report the first difference, if any")
	f.StringVar(&o.isolation, "isolation", "", "how RUN steps are isolated: sandbox (namespaces and overlayfs; the default) or chroot (inside an unprivileged container: no namespaces, steps share its network and processes); default $STRATA_ISOLATION")
	f.Int64Var(&o.pidsLimit, "pids-limit", executor.DefaultPidsLimit, "most processes and threads a RUN step may have at once (0 or -1: no limit)")
	f.StringArrayVar(&o.cacheFrom, "cache-from", nil, "import build cache: type=registry,ref=REF (an export or an image with inline records) or type=local,src=DIR; repeatable")
	f.StringArrayVar(&o.cacheTo, "cache-to", nil, "export build cache: type=registry,ref=REF or type=local,dest=DIR [,mode=min|max][,cache-mounts=true], or type=inline; repeatable")
	f.BoolVar(&o.explainCache, "explain-cache", false, "for every step that misses the cache, say what differs from the closest entry")
	o.addDockerFlags(f)
	o.secretFlags.register(f)
	o.addForeignFlags(f)
	o.parityFlags.register(f)
	f.StringArrayVar(&o.insecure, "insecure-registry", nil, "registry host:port to reach over plain HTTP (localhost and 127.0.0.1 always are); repeatable")
	return cmd
}

// printGraph parses the Dockerfile with the build's options and prints it.
func printGraph(w io.Writer, o *buildOptions, contextDir string) error {
	file := o.file
	var src []byte
	var err error
	if file == "" {
		file = filepath.Join(contextDir, "Dockerfile")
		src, err = builder.ReadContextFile(contextDir, "Dockerfile")
	} else {
		src, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("reading Dockerfile: %w", err)
	}
	opts, err := o.dockerfileOptions(file)
	if err != nil {
		return err
	}
	// One graph per --platform: TARGET* arguments, and so stages, differ.
	gs, err := o.graphs(src, opts)
	if err != nil {
		return err
	}
	for i, g := range gs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := g.WriteText(w); err != nil {
			return err
		}
	}
	return nil
}

// dockerfileOptions turns the flags (and, for a --build-arg KEY with no
// value, the environment, as docker build does) into parse options.
func (o *buildOptions) dockerfileOptions(file string) (dockerfile.Options, error) {
	opts := dockerfile.Options{File: file, Target: o.target, BuildArgs: map[string]string{}}
	for _, kv := range o.buildArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		opts.BuildArgs[k] = v
	}
	if err := o.parsePlatforms(); err != nil {
		return opts, err
	}
	if len(o.platforms) > 0 {
		opts.Platform = o.platforms[0]
	}
	return opts, nil
}

// parsePlatforms reads --platform's comma-separated list as buildx does:
// each in containerd's syntax, normalised ("linux/arm64/v8" is
// linux/arm64, "linux" the host's arch), duplicates dropped.
func (o *buildOptions) parsePlatforms() error {
	o.platforms = nil
	if o.platform == "" {
		return nil
	}
	seen := map[string]bool{}
	for _, s := range strings.Split(o.platform, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			return fmt.Errorf("--platform %q: empty platform in the list", o.platform)
		}
		p, err := dockerfile.ParsePlatform(s)
		if err != nil {
			return fmt.Errorf("--platform %q: %s: %w", o.platform, s, err)
		}
		if k := platforms.Format(p); !seen[k] {
			seen[k] = true
			o.platforms = append(o.platforms, p)
		}
	}
	return nil
}

// graphs parses the Dockerfile once per target platform.
func (o *buildOptions) graphs(src []byte, opts dockerfile.Options) ([]*dockerfile.Graph, error) {
	targets := o.platforms
	if len(targets) == 0 {
		targets = []specs.Platform{{}} // the host's
	}
	var gs []*dockerfile.Graph
	for _, p := range targets {
		opts.Platform = p
		g, err := dockerfile.Parse(src, opts)
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

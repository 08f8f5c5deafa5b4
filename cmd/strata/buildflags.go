package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/strata-build/strata/builder"
)

// parityFlags are flags CI scripts written for `docker buildx build`
// pass: --pull, --no-cache-filter, --build-context, --annotation.
type parityFlags struct {
	pull          bool
	noCacheFilter []string
	buildContexts []string
	annotations   []string
}

func (p *parityFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&p.pull, "pull", false, "always resolve base images in their registry; never fall back to an image of the same name in strata's store")
	f.StringArrayVar(&p.noCacheFilter, "no-cache-filter", nil, "run the steps of these named stages whatever the cache holds (comma list); repeatable")
	f.StringArrayVar(&p.buildContexts, "build-context", nil, "additional build context NAME=VALUE, VALUE a directory, docker-image://REF or oci-layout://PATH[:TAG][@sha256:...]; it replaces FROM NAME, COPY --from=NAME, RUN --mount from=NAME and the stage NAME; repeatable")
	f.StringArrayVar(&p.annotations, "annotation", nil, "annotation [TYPE,...:]KEY=VALUE, TYPE manifest (the default), index, manifest-descriptor or index-descriptor, each optionally TYPE[PLATFORM]; repeatable")
}

// apply sets the build options; each bad value is refused here, before
// any work, in one line naming the flag and the value.
func (p *parityFlags) apply(opts *builder.Options) error {
	opts.Pull = p.pull
	for _, v := range p.noCacheFilter {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n == "" {
				return fmt.Errorf("--no-cache-filter %q: want stage names, comma-separated", v)
			}
			opts.NoCacheStages = append(opts.NoCacheStages, n)
		}
	}
	for _, v := range p.buildContexts {
		k, nc, err := builder.ParseBuildContext(v)
		if err != nil {
			return err
		}
		if _, dup := opts.Contexts[k]; dup {
			return fmt.Errorf("--build-context %q: %s is given twice", v, k)
		}
		if opts.Contexts == nil {
			opts.Contexts = map[string]builder.NamedContext{}
		}
		opts.Contexts[k] = nc
	}
	for _, v := range p.annotations {
		as, err := builder.ParseAnnotation(v)
		if err != nil {
			return err
		}
		opts.Annotations = append(opts.Annotations, as...)
	}
	return nil
}

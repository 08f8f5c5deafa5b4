package attest

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Build types BuildKit writes. Strata's predicate has BuildKit's shape (frontend
// dockerfile.v0, its args, its metadata keys), so it says so with BuildKit's build type:
// consumers pick statements by predicate type and read BuildKit's fields where this one
// says they are; builder.id names who built it.
const (
	BuildTypeV1  = "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
	BuildTypeV02 = "https://mobyproject.org/buildkit@v1"
)

// BuildInfo is what a provenance statement records about one platform's build.
//
// What each mode shows, as BuildKit: mode=min records the frontend, the Dockerfile's name,
// the target and the other frontend options, the base images and remote sources
// (materials), the builder platform and the times; it leaves out every build arg and
// label and then says the parameters are incomplete. mode=max records also every build
// arg with its value, the labels, the ids of the secrets and SSH agents used (never their
// values or sources), the Dockerfile's full text and the build steps. Users must know
// that a build arg given to a mode=max build is readable by anyone who can pull the
// image: secrets go in --secret, never in --build-arg.
type BuildInfo struct {
	// BuilderID is builder.id: buildx sets the CI run's URL there (GitHub Actions:
	// $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/attempts/N); ""
	// elsewhere, as with buildx.
	BuilderID string
	// Mode is "min" (the default; what --provenance=true means) or "max".
	Mode string
	// SLSAVersion is "v1" (the default, BuildKit v0.34's) or "v0.2" (--provenance=version=v0.2).
	SLSAVersion string

	// Context is "" for a local context directory; for a remote one (a git or https URL)
	// it is that URL, with any credentials removed from the statement.
	Context string
	// ContextDigest is the remote context's commit (sha1 or sha256 hex) or content
	// digest ("sha256:..."), when known.
	ContextDigest string
	// Locals names the local directories the build read besides the context and the
	// Dockerfile (--build-context NAME=DIR): inputs nothing pins, listed in the request's
	// locals as BuildKit lists them.
	Locals []string
	// DockerfileName is the Dockerfile's path as given to -f ("Dockerfile" by default):
	// configSource.entryPoint (v0.2), configSource.path (v1).
	DockerfileName string
	// Dockerfile is its content: in mode=max the statement carries it (BuildKit's source
	// infos, base64), as the build definition.
	Dockerfile []byte
	// Args are the build args as given (--build-arg NAME=VALUE), mode=max only.
	Args map[string]string
	// Labels are the --label values, mode=max only.
	Labels map[string]string
	// Target is --target ("" for the last stage).
	Target string
	// Options are other frontend options as BuildKit's request carries them ("no-cache":
	// "", "add-hosts": ..., "shm-size": ...), shown in both modes; the host-specific ones
	// BuildKit drops (platform, image-resolve-mode, cgroup-parent, cache-imports, attest:*)
	// are dropped, and build-arg:, label:, vcs:, filename and context keys refused (they
	// have fields of their own, which mode=min scrubs). Never put a secret here.
	Options map[string]string
	// Secrets and SSH name the --secret and --ssh ids the build used (mode=max only).
	Secrets, SSH []MountRef
	// VCSSource and VCSRevision are the context's git remote URL and commit (buildx's
	// vcs:source and vcs:revision, from BUILDX_GIT_INFO), "" when unknown.
	VCSSource, VCSRevision string

	// BuildPlatform is the builder's platform ("linux/amd64"); TargetPlatform this
	// image's (v1 only, as BuildKit).
	BuildPlatform, TargetPlatform string
	// Materials are the build's inputs fetched from elsewhere: base images (see
	// ImageMaterial), ADD URLs and git sources with their digests.
	Materials []Material
	// Steps are the build steps in build order, mode=max only.
	Steps []Step

	// Started and Finished are the build's times. With SOURCE_DATE_EPOCH set the caller
	// passes the epoch for both, so the statement's bytes do not depend on the clock.
	// Zero leaves them out.
	Started, Finished time.Time
	// InvocationID identifies the build invocation; "" derives one from the
	// platform-independent inputs (so every platform of one build shares it, and two
	// builds of the same inputs have the same), never random.
	InvocationID string
	// Reproducible is the metadata's reproducible claim (BuildKit's reproducible=true attr).
	Reproducible bool
	// NetworkAccess says a RUN step had network (not --network=none): the build is then
	// not hermetic.
	NetworkAccess bool
}

// MountRef names a secret or SSH agent a build used.
type MountRef struct {
	ID       string `json:"id"`
	Optional bool   `json:"optional,omitempty"`
}

// Material is an input of the build, as BuildKit records them: a base image (see
// ImageMaterial), an ADD URL ({URI: "https://example.com/a.tgz", Digest: {"sha256":
// "<hex>"}}) or a git source ({URI: "https://github.com/org/repo.git", Digest: {"sha1":
// "<commit>"}}). Credentials in a URI are removed from the statement.
type Material struct {
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest,omitempty"`
}

// ImageMaterial names a base image as BuildKit does: ref as written in FROM (normalized
// to its package URL), the manifest digest it resolved to and the platform it was
// pulled for.
func ImageMaterial(ref string, manifest v1.Hash, platform string) (Material, error) {
	p, err := ImagePURL(ref, platform)
	if err != nil {
		return Material{}, err
	}
	return Material{URI: p, Digest: map[string]string{manifest.Algorithm: manifest.Hex}}, nil
}

// Step is one build step of the mode=max build definition. A step is a source (Source
// set), a command run (Args set) or a copy (CopySrc set).
type Step struct {
	// Source is a source step's identifier, as BuildKit's: "docker-image://docker.io/library/alpine:3.20@sha256:...",
	// "local://context", "https://...", "git://...".
	Source string
	// Args is a RUN step's command line (["/bin/sh", "-c", "make"]) and Cwd its directory.
	Args []string
	Cwd  string
	// CopySrc and CopyDest are a COPY or ADD step's sources and destination.
	CopySrc  []string
	CopyDest string
	// Inputs are the indexes in BuildInfo.Steps of the steps this one reads.
	Inputs []int
	// StartLine and EndLine are the step's Dockerfile lines (1-based, 0 for none).
	StartLine, EndLine int
}

// Provenance makes the provenance statement of one platform's image from what its build
// recorded. See BuildInfo for what mode=min and mode=max show.
func Provenance(subjects []Subject, info BuildInfo) (Statement, error) {
	mode := info.Mode
	switch mode {
	case "":
		mode = "min"
	case "full":
		mode = "max"
	case "min", "max":
	default:
		return Statement{}, fmt.Errorf("provenance: invalid mode %q (want min or max)", info.Mode)
	}
	for _, m := range info.Materials {
		if m.URI == "" {
			return Statement{}, fmt.Errorf("provenance: a material has no URI")
		}
	}
	p, err := predicateV1(info, mode == "max")
	if err != nil {
		return Statement{}, err
	}
	switch info.SLSAVersion {
	case "", "v1":
		return newStatement(PredicateSLSAProvenanceV1, subjects, p)
	case "v0.2":
		return newStatement(PredicateSLSAProvenanceV02, subjects, p.toV02())
	default:
		return Statement{}, fmt.Errorf("provenance: invalid version %q (want v1 or v0.2)", info.SLSAVersion)
	}
}

// The predicate types below lay their JSON out as BuildKit's provenance types do
// (solver/llbsolver/provenance/types), field for field.

type provV1 struct {
	BuildDefinition struct {
		BuildType            string     `json:"buildType"`
		ResolvedDependencies []Material `json:"resolvedDependencies,omitempty"`
		ExternalParameters   struct {
			ConfigSource configSourceV1 `json:"configSource"`
			Request      parameters     `json:"request"`
		} `json:"externalParameters"`
		InternalParameters internalV1 `json:"internalParameters"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder  builder    `json:"builder"`
		Metadata metadataV1 `json:"metadata"`
	} `json:"runDetails"`
}

type configSourceV1 struct {
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest,omitempty"`
	Path   string            `json:"path,omitempty"`
}

type parameters struct {
	Frontend string            `json:"frontend,omitempty"`
	Args     map[string]string `json:"args,omitempty"`
	Secrets  []MountRef        `json:"secrets,omitempty"`
	SSH      []MountRef        `json:"ssh,omitempty"`
	Locals   []localSource     `json:"locals,omitempty"`
}

type localSource struct {
	Name string `json:"name"`
}

// internalV1's fields are in the order BuildKit's map-based MarshalJSON gives them.
type internalV1 struct {
	BuildConfig     *buildConfig `json:"buildConfig,omitempty"`
	BuilderPlatform string       `json:"builderPlatform"`
	TargetPlatform  string       `json:"targetPlatform,omitempty"`
}

type builder struct {
	ID string `json:"id"`
}

type metadataV1 struct {
	InvocationID     string           `json:"invocationId,omitempty"`
	StartedOn        *time.Time       `json:"startedOn,omitempty"`
	FinishedOn       *time.Time       `json:"finishedOn,omitempty"`
	BuildKitMetadata buildkitMetadata `json:"buildkit_metadata"`
	Hermetic         bool             `json:"buildkit_hermetic,omitempty"`
	Completeness     struct {
		Request              bool `json:"request"`
		ResolvedDependencies bool `json:"resolvedDependencies"`
	} `json:"buildkit_completeness"`
	Reproducible bool `json:"buildkit_reproducible,omitempty"`
}

type buildkitMetadata struct {
	VCS    map[string]string `json:"vcs,omitempty"`
	Source *source           `json:"source,omitempty"`
}

type source struct {
	Locations map[string]locations `json:"locations,omitempty"`
	Infos     []sourceInfo         `json:"infos,omitempty"`
}

type sourceInfo struct {
	Filename string `json:"filename,omitempty"`
	Language string `json:"language,omitempty"`
	Data     []byte `json:"data,omitempty"`
}

// locations is BuildKit's pb.Locations: where in the Dockerfile a step comes from.
type locations struct {
	Locations []location `json:"locations,omitempty"`
}

type location struct {
	Ranges []lineRange `json:"ranges,omitempty"`
}

type lineRange struct {
	Start position `json:"start"`
	End   position `json:"end"`
}

type position struct {
	Line int `json:"line,omitempty"`
}

type buildConfig struct {
	Definition []buildStep `json:"llbDefinition,omitempty"`
}

type buildStep struct {
	ID     string   `json:"id,omitempty"`
	Op     stepOp   `json:"op"`
	Inputs []string `json:"inputs,omitempty"`
}

// stepOp is the JSON of BuildKit's pb.Op (solver/pb/json.go) for the three kinds of step.
type stepOp struct {
	Op struct {
		Exec *struct {
			Meta struct {
				Args []string `json:"args,omitempty"`
				Cwd  string   `json:"cwd,omitempty"`
			} `json:"meta"`
		} `json:"exec,omitempty"`
		Source *struct {
			Identifier string `json:"identifier,omitempty"`
		} `json:"source,omitempty"`
		File *struct {
			Actions []fileAction `json:"actions,omitempty"`
		} `json:"file,omitempty"`
	}
}

type fileAction struct {
	Input          int `json:"input"`
	SecondaryInput int `json:"secondaryInput"`
	Output         int `json:"output"`
	Action         struct {
		Copy struct {
			Src  string `json:"src,omitempty"`
			Dest string `json:"dest,omitempty"`
		} `json:"copy"`
	}
}

func predicateV1(info BuildInfo, max bool) (*provV1, error) {
	p := &provV1{}
	bd := &p.BuildDefinition
	bd.BuildType = BuildTypeV1
	bd.ResolvedDependencies = sortedMaterials(info.Materials)

	cs := &bd.ExternalParameters.ConfigSource
	if info.Context != "" {
		cs.URI = redactURL(info.Context)
		if d := info.ContextDigest; d != "" {
			alg, hex, ok := strings.Cut(d, ":")
			switch {
			case ok:
				cs.Digest = map[string]string{alg: hex}
			case len(d) == 64:
				cs.Digest = map[string]string{"sha256": d}
			default:
				cs.Digest = map[string]string{"sha1": d}
			}
		}
	}
	cs.Path = info.DockerfileName
	if cs.Path == "" {
		cs.Path = "Dockerfile"
	}

	req := &bd.ExternalParameters.Request
	req.Frontend = "dockerfile.v0"
	args := map[string]string{}
	for k, v := range info.Options {
		switch {
		case strings.HasPrefix(k, "build-arg:"), strings.HasPrefix(k, "label:"), strings.HasPrefix(k, "vcs:"), k == "filename", k == "context":
			// Options bypass mode=min's scrubbing: what it must scrub comes through Args and Labels.
			return nil, fmt.Errorf("provenance: option %q belongs in BuildInfo's own fields", k)
		case hostSpecific[k], strings.HasPrefix(k, "attest:"):
			continue
		}
		args[k] = v
	}
	if info.Target != "" {
		args["target"] = info.Target
	}
	// BuildKit's min mode drops build args and labels and then calls the request incomplete.
	scrubbed := false
	for k, v := range info.Args {
		if max {
			args["build-arg:"+k] = v
		}
		scrubbed = true
	}
	for k, v := range info.Labels {
		if max {
			args["label:"+k] = v
		}
		scrubbed = true
	}
	if len(args) > 0 {
		req.Args = args
	}
	if max {
		req.Secrets = sortedRefs(info.Secrets)
		req.SSH = sortedRefs(info.SSH)
	}
	if info.Context == "" {
		req.Locals = []localSource{{Name: "context"}, {Name: "dockerfile"}}
	}
	for _, l := range slices.Sorted(slices.Values(info.Locals)) {
		req.Locals = append(req.Locals, localSource{Name: l})
	}

	bd.InternalParameters.BuilderPlatform = info.BuildPlatform
	if info.TargetPlatform != "" {
		tp, err := NormalizePlatform(info.TargetPlatform)
		if err != nil {
			return nil, fmt.Errorf("provenance: %w", err)
		}
		bd.InternalParameters.TargetPlatform = tp
	}

	rd := &p.RunDetails
	rd.Builder.ID = redactURL(info.BuilderID)
	md := &rd.Metadata
	md.InvocationID = info.InvocationID
	if md.InvocationID == "" {
		md.InvocationID = invocationID(info, max)
	}
	md.StartedOn = utc(info.Started)
	md.FinishedOn = utc(info.Finished)
	md.Reproducible = info.Reproducible
	// A local context is an input no digest pins: BuildKit calls the materials incomplete.
	// So is a remote one whose commit or content digest is not known.
	completeMaterials := info.Context != "" && info.ContextDigest != "" && len(info.Locals) == 0
	md.Completeness.Request = !(scrubbed && !max)
	md.Completeness.ResolvedDependencies = completeMaterials
	md.Hermetic = completeMaterials && !info.NetworkAccess
	if info.VCSSource != "" || info.VCSRevision != "" {
		md.BuildKitMetadata.VCS = map[string]string{}
		if info.VCSSource != "" {
			md.BuildKitMetadata.VCS["source"] = redactURL(info.VCSSource)
		}
		if info.VCSRevision != "" {
			md.BuildKitMetadata.VCS["revision"] = info.VCSRevision
		}
	}

	if max {
		bc, locs, err := buildSteps(info.Steps)
		if err != nil {
			return nil, err
		}
		bd.InternalParameters.BuildConfig = bc
		if len(info.Dockerfile) > 0 || len(locs) > 0 {
			md.BuildKitMetadata.Source = &source{
				Locations: locs,
				Infos: []sourceInfo{{
					Filename: cs.Path,
					Language: "Dockerfile",
					Data:     info.Dockerfile,
				}},
			}
		}
	}
	return p, nil
}

// hostSpecific are the frontend options BuildKit's FilterArgs leaves out of the request.
var hostSpecific = map[string]bool{"cgroup-parent": true, "image-resolve-mode": true, "platform": true, "cache-imports": true}

func buildSteps(steps []Step) (*buildConfig, map[string]locations, error) {
	if len(steps) == 0 {
		return nil, nil, nil
	}
	bc := &buildConfig{}
	locs := map[string]locations{}
	for i, s := range steps {
		id := fmt.Sprintf("step%d", i)
		bs := buildStep{ID: id}
		for _, in := range s.Inputs {
			if in < 0 || in >= i {
				return nil, nil, fmt.Errorf("provenance: step %d reads step %d, which is not an earlier step", i, in)
			}
			bs.Inputs = append(bs.Inputs, fmt.Sprintf("step%d:0", in))
		}
		switch {
		case s.Source != "":
			bs.Op.Op.Source = &struct {
				Identifier string `json:"identifier,omitempty"`
			}{Identifier: redactURL(s.Source)}
		case len(s.Args) > 0:
			bs.Op.Op.Exec = &struct {
				Meta struct {
					Args []string `json:"args,omitempty"`
					Cwd  string   `json:"cwd,omitempty"`
				} `json:"meta"`
			}{}
			bs.Op.Op.Exec.Meta.Args = s.Args
			bs.Op.Op.Exec.Meta.Cwd = s.Cwd
		case len(s.CopySrc) > 0:
			bs.Op.Op.File = &struct {
				Actions []fileAction `json:"actions,omitempty"`
			}{}
			for _, src := range s.CopySrc {
				var a fileAction
				a.SecondaryInput = 1
				if len(s.Inputs) < 2 {
					a.SecondaryInput = -1
				}
				a.Output = 0
				a.Action.Copy.Src = redactURL(src) // an ADD URL's
				a.Action.Copy.Dest = s.CopyDest
				bs.Op.Op.File.Actions = append(bs.Op.Op.File.Actions, a)
			}
		default:
			return nil, nil, fmt.Errorf("provenance: step %d is neither a source, a command nor a copy", i)
		}
		bc.Definition = append(bc.Definition, bs)
		if s.StartLine > 0 {
			end := s.EndLine
			if end < s.StartLine {
				end = s.StartLine
			}
			locs[id] = locations{Locations: []location{{Ranges: []lineRange{{Start: position{Line: s.StartLine}, End: position{Line: end}}}}}}
		}
	}
	if len(locs) == 0 {
		locs = nil
	}
	return bc, locs, nil
}

// SLSA v0.2, as BuildKit's ConvertToSLSA02 lays it out.
type provV02 struct {
	Builder    builder    `json:"builder"`
	BuildType  string     `json:"buildType"`
	Materials  []Material `json:"materials,omitempty"`
	Invocation struct {
		ConfigSource struct {
			URI        string            `json:"uri,omitempty"`
			Digest     map[string]string `json:"digest,omitempty"`
			EntryPoint string            `json:"entryPoint,omitempty"`
		} `json:"configSource"`
		Parameters  parameters `json:"parameters"`
		Environment struct {
			Platform string `json:"platform"`
		} `json:"environment"`
	} `json:"invocation"`
	BuildConfig *buildConfig `json:"buildConfig,omitempty"`
	Metadata    struct {
		BuildInvocationID string     `json:"buildInvocationID,omitempty"`
		BuildStartedOn    *time.Time `json:"buildStartedOn,omitempty"`
		BuildFinishedOn   *time.Time `json:"buildFinishedOn,omitempty"`
		Completeness      struct {
			Parameters  bool `json:"parameters"`
			Environment bool `json:"environment"`
			Materials   bool `json:"materials"`
		} `json:"completeness"`
		Reproducible     bool             `json:"reproducible"`
		BuildKitMetadata buildkitMetadata `json:"https://mobyproject.org/buildkit@v1#metadata"`
		Hermetic         bool             `json:"https://mobyproject.org/buildkit@v1#hermetic,omitempty"`
	} `json:"metadata"`
}

func (p *provV1) toV02() *provV02 {
	o := &provV02{}
	o.Builder = p.RunDetails.Builder
	o.BuildType = BuildTypeV02
	o.Materials = p.BuildDefinition.ResolvedDependencies
	cs := p.BuildDefinition.ExternalParameters.ConfigSource
	o.Invocation.ConfigSource.URI = cs.URI
	o.Invocation.ConfigSource.Digest = cs.Digest
	o.Invocation.ConfigSource.EntryPoint = cs.Path
	o.Invocation.Parameters = p.BuildDefinition.ExternalParameters.Request
	o.Invocation.Environment.Platform = p.BuildDefinition.InternalParameters.BuilderPlatform
	o.BuildConfig = p.BuildDefinition.InternalParameters.BuildConfig
	md := p.RunDetails.Metadata
	o.Metadata.BuildInvocationID = md.InvocationID
	o.Metadata.BuildStartedOn = md.StartedOn
	o.Metadata.BuildFinishedOn = md.FinishedOn
	o.Metadata.Completeness.Parameters = md.Completeness.Request
	o.Metadata.Completeness.Environment = true
	o.Metadata.Completeness.Materials = md.Completeness.ResolvedDependencies
	o.Metadata.Reproducible = md.Reproducible
	o.Metadata.BuildKitMetadata = md.BuildKitMetadata
	o.Metadata.Hermetic = md.Hermetic
	return o
}

// sortedMaterials orders materials as BuildKit does, images first, then git, then
// URLs, each by URI, so the caller's order does not change the bytes.
func sortedMaterials(in []Material) []Material {
	if len(in) == 0 {
		return nil
	}
	out := make([]Material, len(in))
	copy(out, in)
	rank := func(m Material) int {
		switch {
		case strings.HasPrefix(m.URI, "pkg:docker/"), strings.HasPrefix(m.URI, "pkg:oci/"):
			return 0
		case strings.HasPrefix(m.URI, "git"), strings.HasSuffix(strings.SplitN(m.URI, "#", 2)[0], ".git"):
			return 1
		default:
			return 2
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rank(out[i]), rank(out[j])
		if ri != rj {
			return ri < rj
		}
		return out[i].URI < out[j].URI
	})
	for i := range out {
		out[i].URI = redactURL(out[i].URI)
	}
	return out
}

func sortedRefs(in []MountRef) []MountRef {
	if len(in) == 0 {
		return nil
	}
	out := make([]MountRef, len(in))
	copy(out, in)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// redactURL removes a URL's credentials (a token in a git or https URL must not reach a
// statement anyone pulling the image reads). An http(s) URL loses its whole user
// information: the user name is a token as often as not (https://TOKEN@host,
// https://TOKEN:x-oauth-basic@host). A URL that does not parse (a '%' in a token) loses
// what stands before the last '@' of its authority. Non-URLs pass unchanged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		scheme, rest, ok := strings.Cut(s, "://")
		if !ok {
			return s
		}
		auth := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			auth = rest[:i]
		}
		if i := strings.LastIndex(auth, "@"); i >= 0 {
			return scheme + "://xxxxx@" + rest[i+1:]
		}
		return s
	}
	if u.User == nil {
		return s
	}
	switch _, hasPassword := u.User.Password(); {
	case u.Scheme == "http" || u.Scheme == "https":
		u.User = url.User("xxxxx")
	case hasPassword:
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	default:
		return s // ssh://git@host: a user name, no credential
	}
	return u.String()
}

func utc(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// invocationID derives an id shaped like BuildKit's (25 lower-case base32 characters)
// from the platform-independent inputs the statement shows: mode=min's leaves out the
// build args and labels, as the statement does (a hash of a low-entropy value would let
// anyone holding the Dockerfile confirm a guess of it).
func invocationID(info BuildInfo, max bool) string {
	if !max {
		info.Args, info.Labels = nil, nil
	}
	in := struct {
		BuilderID, Context, ContextDigest, DockerfileName string
		Dockerfile                                        []byte
		Args, Labels, Options                             map[string]string
		Target                                            string
		Secrets, SSH                                      []MountRef
		Locals                                            []string
		VCSSource, VCSRevision, BuildPlatform             string
		Started, Finished                                 *time.Time
	}{info.BuilderID, info.Context, info.ContextDigest, info.DockerfileName, info.Dockerfile,
		info.Args, info.Labels, info.Options, info.Target, sortedRefs(info.Secrets), sortedRefs(info.SSH), slices.Sorted(slices.Values(info.Locals)),
		info.VCSSource, info.VCSRevision, info.BuildPlatform, utc(info.Started), utc(info.Finished)}
	b, _ := json.Marshal(in) // maps marshal sorted; nothing here can fail to encode
	sum := sha256.Sum256(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:25]
}

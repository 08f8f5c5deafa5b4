package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func testInfo(t *testing.T) BuildInfo {
	t.Helper()
	base, err := ImageMaterial("docker.io/library/alpine:3.20", v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}, "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1700000000, 0)
	return BuildInfo{
		BuilderID:      "https://github.com/org/repo/actions/runs/1/attempts/1",
		DockerfileName: "Dockerfile",
		Dockerfile:     []byte("FROM alpine:3.20\nARG FOO\nRUN --mount=type=secret,id=npmrc echo $FOO\n"),
		Args:           map[string]string{"FOO": "bar-value", "ZED": "z"},
		Labels:         map[string]string{"org.opencontainers.image.title": "app"},
		Target:         "final",
		Secrets:        []MountRef{{ID: "npmrc"}},
		BuildPlatform:  "linux/amd64",
		TargetPlatform: "linux/amd64",
		Materials: []Material{
			{URI: "https://example.com/file.tar.gz", Digest: map[string]string{"sha256": strings.Repeat("b", 64)}},
			base,
		},
		Steps: []Step{
			{Source: "docker-image://docker.io/library/alpine:3.20@sha256:" + strings.Repeat("a", 64), StartLine: 1},
			{Args: []string{"/bin/sh", "-c", "echo $FOO"}, Cwd: "/", Inputs: []int{0}, StartLine: 3},
		},
		Started:  epoch,
		Finished: epoch,
	}
}

func decode(t *testing.T, st Statement) map[string]any {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("statement does not parse back: %v", err)
	}
	return m
}

// get walks a decoded JSON value by keys (objects) and indexes (arrays).
func get(t *testing.T, v any, keys ...any) any {
	t.Helper()
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %q: not an object: %v", k, v)
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				t.Fatalf("at [%d]: not an array that long: %v", k, v)
			}
			v = a[k]
		}
	}
	return v
}

func TestSubjects(t *testing.T) {
	h, _ := v1.NewHash(testDigest)
	subj, err := Subjects([]string{"app:1.0", "ghcr.io/org/app", "docker.io/myorg/tool:2"}, "linux/arm64/v8", h)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pkg:docker/app@1.0?platform=linux%2Farm64",
		"pkg:docker/ghcr.io/org/app@latest?platform=linux%2Farm64",
		"pkg:docker/myorg/tool@2?platform=linux%2Farm64",
	}
	if len(subj) != len(want) {
		t.Fatalf("got %d subjects, want %d", len(subj), len(want))
	}
	for i, s := range subj {
		if s.Name != want[i] {
			t.Errorf("subject %d = %q, want %q", i, s.Name, want[i])
		}
		if s.Digest["sha256"] != h.Hex {
			t.Errorf("subject %d digest = %v, want %s", i, s.Digest, h.Hex)
		}
	}
	none, err := Subjects(nil, "linux/amd64", h)
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("an unnamed image: subjects %v, %v; want an empty list as BuildKit", none, err)
	}
	for ref, want := range map[string]string{
		"alpine@" + testDigest:                   "pkg:docker/alpine?digest=" + testDigest,
		"alpine:3.20@" + testDigest:              "pkg:docker/alpine@3.20?digest=" + testDigest,
		"localhost:5000/a/b:c":                   "pkg:docker/localhost:5000/a/b@c",
		"docker.io/library/debian:bookworm-slim": "pkg:docker/debian@bookworm-slim",
	} {
		got, err := ImagePURL(ref, "")
		if err != nil || got != want {
			t.Errorf("ImagePURL(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if _, err := ImagePURL("Bad/Upper", ""); err == nil {
		t.Error("an invalid reference was accepted")
	}
}

func TestProvenanceMinMax(t *testing.T) {
	info := testInfo(t)
	h, _ := v1.NewHash(testDigest)
	subj, _ := Subjects([]string{"app:1.0"}, "linux/amd64", h)

	info.Mode = "min"
	minSt, err := Provenance(subj, info)
	if err != nil {
		t.Fatal(err)
	}
	info.Mode = "max"
	maxSt, err := Provenance(subj, info)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []Statement{minSt, maxSt} {
		m := decode(t, st)
		if m["_type"] != StatementType || m["predicateType"] != PredicateSLSAProvenanceV1 {
			t.Errorf("header = %v %v", m["_type"], m["predicateType"])
		}
		if get(t, m, "subject", 0, "digest", "sha256") != h.Hex || get(t, m, "subject", 0, "name") != "pkg:docker/app@1.0?platform=linux%2Famd64" {
			t.Errorf("subject = %v", m["subject"])
		}
		p := get(t, m, "predicate")
		if get(t, p, "buildDefinition", "buildType") != BuildTypeV1 {
			t.Errorf("buildType = %v", get(t, p, "buildDefinition", "buildType"))
		}
		if get(t, p, "buildDefinition", "externalParameters", "configSource", "path") != "Dockerfile" ||
			get(t, p, "buildDefinition", "externalParameters", "request", "frontend") != "dockerfile.v0" ||
			get(t, p, "buildDefinition", "externalParameters", "request", "args", "target") != "final" {
			t.Errorf("request = %v", get(t, p, "buildDefinition", "externalParameters"))
		}
		if get(t, p, "buildDefinition", "resolvedDependencies", 0, "uri") != "pkg:docker/alpine@3.20?platform=linux%2Famd64" {
			t.Errorf("base image material = %v", get(t, p, "buildDefinition", "resolvedDependencies"))
		}
		if get(t, p, "runDetails", "builder", "id") != info.BuilderID {
			t.Errorf("builder = %v", get(t, p, "runDetails", "builder"))
		}
		if get(t, p, "runDetails", "metadata", "startedOn") != "2023-11-14T22:13:20Z" {
			t.Errorf("startedOn = %v", get(t, p, "runDetails", "metadata", "startedOn"))
		}
		if get(t, p, "buildDefinition", "externalParameters", "request", "locals", 0, "name") != "context" {
			t.Errorf("locals = %v", get(t, p, "buildDefinition", "externalParameters", "request", "locals"))
		}
	}

	// mode=min: no build arg, label, secret id, Dockerfile or steps; the request says it is incomplete.
	minRaw := string(minSt.Predicate)
	for _, leak := range []string{"bar-value", "build-arg:", "label:", "npmrc", "llbDefinition", "FROM alpine", "\"source\""} {
		if strings.Contains(minRaw, leak) {
			t.Errorf("mode=min shows %q: %s", leak, minRaw)
		}
	}
	mm := decode(t, minSt)
	if get(t, mm, "predicate", "runDetails", "metadata", "buildkit_completeness", "request") != false {
		t.Error("mode=min with build args must call the request incomplete")
	}

	// mode=max: every build arg, the secret's id, the Dockerfile and the steps.
	mx := decode(t, maxSt)
	p := get(t, mx, "predicate")
	args := get(t, p, "buildDefinition", "externalParameters", "request", "args").(map[string]any)
	if args["build-arg:FOO"] != "bar-value" || args["build-arg:ZED"] != "z" || args["label:org.opencontainers.image.title"] != "app" {
		t.Errorf("mode=max args = %v", args)
	}
	if get(t, p, "buildDefinition", "externalParameters", "request", "secrets", 0, "id") != "npmrc" {
		t.Errorf("mode=max secrets = %v", get(t, p, "buildDefinition", "externalParameters", "request", "secrets"))
	}
	if get(t, p, "runDetails", "metadata", "buildkit_completeness", "request") != true {
		t.Error("mode=max request must be complete")
	}
	src := get(t, p, "runDetails", "metadata", "buildkit_metadata", "source", "infos", 0)
	data, _ := base64.StdEncoding.DecodeString(get(t, src, "data").(string))
	if !bytes.Equal(data, info.Dockerfile) || get(t, src, "language") != "Dockerfile" || get(t, src, "filename") != "Dockerfile" {
		t.Errorf("mode=max source info = %v", src)
	}
	steps := get(t, p, "buildDefinition", "internalParameters", "buildConfig", "llbDefinition").([]any)
	if len(steps) != 2 || get(t, steps[1], "id") != "step1" || get(t, steps[1], "inputs", 0) != "step0:0" ||
		get(t, steps[1], "op", "Op", "exec", "meta", "args", 2) != "echo $FOO" {
		t.Errorf("mode=max steps = %v", steps)
	}
	if get(t, p, "runDetails", "metadata", "buildkit_metadata", "source", "locations", "step1", "locations", 0, "ranges", 0, "start", "line") != float64(3) {
		t.Errorf("step locations = %v", get(t, p, "runDetails", "metadata", "buildkit_metadata", "source"))
	}
}

func TestProvenanceV02(t *testing.T) {
	info := testInfo(t)
	info.SLSAVersion = "v0.2"
	info.Mode = "max"
	st, err := Provenance(nil, info)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, st)
	if m["predicateType"] != PredicateSLSAProvenanceV02 {
		t.Fatalf("predicateType = %v", m["predicateType"])
	}
	if s, ok := m["subject"].([]any); !ok || len(s) != 0 {
		t.Errorf("unnamed image's subject = %v, want []", m["subject"])
	}
	p := get(t, m, "predicate")
	for _, c := range []struct {
		keys []any
		want any
	}{
		{[]any{"buildType"}, BuildTypeV02},
		{[]any{"builder", "id"}, info.BuilderID},
		{[]any{"invocation", "configSource", "entryPoint"}, "Dockerfile"},
		{[]any{"invocation", "parameters", "frontend"}, "dockerfile.v0"},
		{[]any{"invocation", "parameters", "args", "build-arg:FOO"}, "bar-value"},
		{[]any{"invocation", "environment", "platform"}, "linux/amd64"},
		{[]any{"materials", 0, "digest", "sha256"}, strings.Repeat("a", 64)},
		{[]any{"materials", 1, "uri"}, "https://example.com/file.tar.gz"},
		{[]any{"metadata", "buildStartedOn"}, "2023-11-14T22:13:20Z"},
		{[]any{"metadata", "buildFinishedOn"}, "2023-11-14T22:13:20Z"},
		{[]any{"metadata", "completeness", "environment"}, true},
		{[]any{"metadata", "completeness", "materials"}, false},
		{[]any{"metadata", "reproducible"}, false},
		{[]any{"metadata", "https://mobyproject.org/buildkit@v1#metadata", "source", "infos", 0, "language"}, "Dockerfile"},
		{[]any{"buildConfig", "llbDefinition", 0, "op", "Op", "source", "identifier"}, info.Steps[0].Source},
	} {
		if got := get(t, p, c.keys...); got != c.want {
			t.Errorf("predicate %v = %v, want %v", c.keys, got, c.want)
		}
	}
	id, _ := get(t, p, "metadata", "buildInvocationID").(string)
	if len(id) != 25 {
		t.Errorf("buildInvocationID = %q", id)
	}
}

// TestProvenanceStable: the same inputs give the same bytes whatever the order of maps
// and materials, the time zone, and across runs; and a different input a different id.
func TestProvenanceStable(t *testing.T) {
	a := testInfo(t)
	a.Mode = "max"
	b := testInfo(t)
	b.Mode = "max"
	b.Materials[0], b.Materials[1] = b.Materials[1], b.Materials[0]
	b.Args = map[string]string{"ZED": "z", "FOO": "bar-value"}
	b.Started = b.Started.In(time.FixedZone("X", 5*3600))
	b.Finished = b.Finished.In(time.FixedZone("Y", -7*3600))
	sa, err := Provenance(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Provenance(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(sa)
	jb, _ := json.Marshal(sb)
	if !bytes.Equal(ja, jb) {
		t.Errorf("same inputs, different bytes:\n%s\n%s", ja, jb)
	}
	// Another platform of the same build shares the invocation id.
	c := testInfo(t)
	c.Mode = "max"
	c.TargetPlatform = "linux/arm64"
	sc, _ := Provenance(nil, c)
	if x, y := get(t, decode(t, sa), "predicate", "runDetails", "metadata", "invocationId"), get(t, decode(t, sc), "predicate", "runDetails", "metadata", "invocationId"); x != y {
		t.Errorf("platforms of one build: invocation ids %v and %v", x, y)
	}
	c.Args["FOO"] = "other"
	sc, _ = Provenance(nil, c)
	if x, y := get(t, decode(t, sa), "predicate", "runDetails", "metadata", "invocationId"), get(t, decode(t, sc), "predicate", "runDetails", "metadata", "invocationId"); x == y {
		t.Errorf("different build args, same invocation id %v", x)
	}
}

func TestProvenanceRedactsAndRefuses(t *testing.T) {
	info := testInfo(t)
	info.Context = "https://user:s3cret@github.com/org/repo.git#main"
	info.ContextDigest = strings.Repeat("c", 40)
	info.Materials = append(info.Materials, Material{URI: "https://tok3n@example.com/x.tgz", Digest: map[string]string{"sha256": strings.Repeat("d", 64)}})
	st, err := Provenance(nil, info)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(st.Predicate)
	if strings.Contains(raw, "s3cret") || strings.Contains(raw, "tok3n") {
		t.Errorf("credentials reached the statement: %s", raw)
	}
	m := decode(t, st)
	if get(t, m, "predicate", "buildDefinition", "externalParameters", "configSource", "digest", "sha1") != info.ContextDigest {
		t.Errorf("remote context digest = %v", get(t, m, "predicate", "buildDefinition", "externalParameters", "configSource"))
	}
	if get(t, m, "predicate", "runDetails", "metadata", "buildkit_completeness", "resolvedDependencies") != true {
		t.Error("a remote context with digests: materials should be complete")
	}
	info = testInfo(t)
	info.Options = map[string]string{"no-cache": "", "platform": "linux/amd64", "attest:provenance": "mode=min", "image-resolve-mode": "pull"}
	st, err = Provenance(nil, info)
	if err != nil {
		t.Fatal(err)
	}
	if args := get(t, decode(t, st), "predicate", "buildDefinition", "externalParameters", "request", "args").(map[string]any); len(args) != 2 || args["no-cache"] != "" || args["target"] != "final" {
		t.Errorf("args with options = %v, want no-cache and target (BuildKit drops host-specific ones)", args)
	}
	for _, bad := range []BuildInfo{{Mode: "everything"}, {SLSAVersion: "v9"}, {Materials: []Material{{}}},
		{Options: map[string]string{"build-arg:TOKEN": "x"}}, {Options: map[string]string{"label:a": "b"}}} {
		if _, err := Provenance(nil, bad); err == nil {
			t.Errorf("Provenance(%+v) accepted", bad)
		}
	}
}

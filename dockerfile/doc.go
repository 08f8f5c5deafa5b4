// Package dockerfile turns a Dockerfile into a stage graph the builder can walk.
//
// Parsing, typed instructions and word expansion are BuildKit's own
// (frontend/dockerfile/parser, instructions and shell), so Strata reads a
// Dockerfile exactly as `docker build` does; this package adds what BuildKit
// keeps inside its LLB converter: ARG scoping, the resolved base of each stage,
// the dependencies between stages, --target pruning and a run order.
//
// Parse returns a Graph. Its stages are in an order the builder can run one
// by one; stages with the same Level do not depend on each other and may run
// in parallel. Each Stage carries a preview of its steps (Stage.Steps),
// expanded as far as the Dockerfile alone allows. Variables a base image may
// define (PATH, GOPATH, ...) are only known once the image is pulled, so the
// builder calls Stage.Expand with the base's State to get the steps it runs:
// ImageState for an image or scratch, the parent's Expanded.End for a stage
// built FROM another stage.
//
// What Docker accepts and Strata does not implement yet is listed in one
// table, unsupported in support.go: Parse checks every instruction of every
// stage the target needs against it, and Expand the ONBUILD triggers of a
// base image and the values only its ENV decides, so a build fails before
// its first step (before the first step of that stage, for what the image
// decides), naming the first such instruction. These errors wrap
// ErrNotSupported; the builder refuses nothing of its own.
//
// Parse also runs BuildKit's build checks (its linter rules, names and
// messages) as Graph.Warnings, configured by `# check=` or the
// BUILDKIT_DOCKERFILE_CHECK build arg; with error=true a violation fails
// Parse. Those BuildKit runs as it dispatches instructions (checks.go,
// stageLint) run in the preview, so only on the stages the target needs.
//
// Every error Parse or Expand returns is, or wraps, an *Error naming the
// Dockerfile and the line. The package reads no environment variables and
// touches no files: the caller passes the Dockerfile bytes and the options.
package dockerfile

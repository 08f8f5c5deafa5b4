// Package attest makes the supply-chain attestations `docker buildx build` attaches to an
// image (--provenance, --sbom, --attest) the way BuildKit v0.34 writes them, so that the
// tools reading BuildKit's (docker buildx imagetools inspect, docker scout, cosign, trivy,
// syft) find and read Strata's:
//
//   - Provenance: an in-toto statement with a SLSA provenance predicate (v1 by default, as
//     BuildKit v0.34; v0.2 on request), mode=min or mode=max.
//   - SBOM: an in-toto statement with an SPDX 2.3 JSON document of the packages in the
//     final image (dpkg, apk, Go binaries), read from the image's layers.
//   - Manifest: the attestation manifest BuildKit puts in the image index next to each
//     platform's image manifest, and the descriptor that goes in the index for it.
//   - Referrer: the same statements as an OCI 1.1 artifact whose subject is the image
//     manifest, for registries' referrers API (--attest-referrers).
//
// Every output is a function of the inputs alone: no clock, no random identifier, maps
// sorted. A caller honouring SOURCE_DATE_EPOCH passes the epoch as the times.
//
// A multi-platform build calls, for each platform's image:
//
//	subjects, _ := attest.Subjects(tags, platform, imageDigest)
//	prov, _ := attest.Provenance(subjects, info)          // info: BuildInfo of this platform
//	sbom, _ := attest.SBOM(ctx, subjects, img, attest.SBOMOptions{Created: t})
//	att, desc, _ := attest.Manifest(imageDescriptor, prov, sbom)
//	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: att, Descriptor: desc})
//
// after the image manifests themselves, as BuildKit orders the index: images first, then
// their attestation manifests in the same order.
package attest

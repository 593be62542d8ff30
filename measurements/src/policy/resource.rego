# KBS resource policy written by pp-measure: release resources only to a
# requester whose attestation token is affirming under the image's
# attestation policy AND whose evidence binds this image's init-data.
#
# Input (Trustee KBS): `input` is the EAR token's claims, one submodule per
# attested device, here `cpu0`; `data.plugin` is the first path segment
# after /kbs/v0/.
package policy

import rego.v1

default allow := false

pinned_init_data := {{PINNED_INIT_DATA}}

allow if {
	data.plugin == "resource"
	cpu := input.submods.cpu0
	cpu["ear.status"] == "affirming"
	cpu["ear.veraison.annotated-evidence"].init_data in pinned_init_data
}

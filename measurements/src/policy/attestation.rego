# Attestation policy for one peer-pod image and one init-data document,
# written by pp-measure. It replaces Trustee's "default_cpu" policy.
#
# Contract with Trustee's EAR token broker: the rule `trust_claims` maps
# AR4SI claim names to values; an appraisal is "affirming" only when all
# three claims below reach their affirming values. Input paths are the
# claims of Trustee's verifiers (snp, tdx, az-snp-vtpm, az-tdx-vtpm), with
# `input.init_data` the hex init-data claim the verifier derived from the
# evidence (SNP HOST_DATA, TDX MRCONFIGID, vTPM PCR 8).
package policy

import rego.v1

# 33: executables not recognised; 97: hardware not recognised;
# 36: security-relevant configuration unavailable.
default executables := 33

default hardware := 97

default configuration := 36

trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
}

# The init-data this image must be launched with, in every form a verifier
# reports it.
pinned_init_data := {{PINNED_INIT_DATA}}

init_data_pinned if input.init_data in pinned_init_data

# vTPM clouds boot the UKI through firmware. With Secure Boot off, its
# systemd-stub appends an SMBIOS string (io.systemd.stub.kernel-cmdline-extra)
# that the host sets to the sealed kernel command line and measures it into
# PCR 12, which stays all zeros when nothing was appended. Nothing may be:
# an appended init= or module option would run under PCR 11's good value.
unextended_pcr := "0000000000000000000000000000000000000000000000000000000000000000"

# 3: only approved executables were loaded.
executables := 3 if {
	input.snp
	init_data_pinned
	input.snp.measurement in query_reference_value("snp_launch_measurement")
}

executables := 3 if {
	input.tdx
	init_data_pinned
	input.tdx.quote.body.rtmr_1 in query_reference_value("rtmr_1")
	input.tdx.quote.body.rtmr_2 in query_reference_value("rtmr_2")
}

executables := 3 if {
	input["az-snp-vtpm"]
	init_data_pinned
	input["az-snp-vtpm"].tpm.pcr11 in query_reference_value("snp_pcr11")
	input["az-snp-vtpm"].tpm.pcr12 == unextended_pcr
}

executables := 3 if {
	input["az-tdx-vtpm"]
	init_data_pinned
	input["az-tdx-vtpm"].tpm.pcr11 in query_reference_value("tdx_pcr11")
	input["az-tdx-vtpm"].tpm.pcr12 == unextended_pcr
}

# 2: genuine hardware and firmware at an accepted TCB.
hardware := 2 if {
	input.snp
	input.snp.reported_tcb_bootloader in query_reference_value("snp_bootloader")
	input.snp.reported_tcb_microcode in query_reference_value("snp_microcode")
	input.snp.reported_tcb_snp in query_reference_value("snp_snp_svn")
	input.snp.reported_tcb_tee in query_reference_value("snp_tee_svn")
}

hardware := 2 if {
	input.tdx
	input.tdx.quote.header.tee_type == "81000000"
	input.tdx.quote.body.mr_td in query_reference_value("mr_td")
	input.tdx.tcb_status == "UpToDate"
	input.tdx.collateral_expiration_status == "0"
}

hardware := 2 if {
	input["az-snp-vtpm"]
	input["az-snp-vtpm"].reported_tcb_bootloader in query_reference_value("tcb_bootloader")
	input["az-snp-vtpm"].reported_tcb_microcode in query_reference_value("tcb_microcode")
	input["az-snp-vtpm"].reported_tcb_snp in query_reference_value("tcb_snp")
	input["az-snp-vtpm"].reported_tcb_tee in query_reference_value("tcb_tee")
}

hardware := 2 if {
	input["az-tdx-vtpm"]
	input["az-tdx-vtpm"].quote.header.tee_type == "81000000"
	input["az-tdx-vtpm"].tcb_status == "UpToDate"
}

# 2: the configuration is a known, approved one (no debug, no migration
# agent, the platform settings the operator published).
configuration := 2 if {
	input.snp
	input.snp.policy_debug_allowed == false
	input.snp.policy_migrate_ma == false
	input.snp.platform_smt_enabled == query_reference_value("snp_smt_enabled")
	input.snp.platform_tsme_enabled == query_reference_value("snp_tsme_enabled")
	input.snp.policy_abi_major == query_reference_value("snp_guest_abi_major")
	input.snp.policy_abi_minor == query_reference_value("snp_guest_abi_minor")
	input.snp.policy_single_socket == query_reference_value("snp_single_socket")
	input.snp.policy_smt_allowed == query_reference_value("snp_smt_allowed")
}

configuration := 2 if {
	input.tdx
	input.tdx.td_attributes.debug == false
	input.tdx.quote.body.xfam in query_reference_value("xfam")
}

configuration := 2 if {
	input["az-snp-vtpm"]
	input["az-snp-vtpm"].policy_debug_allowed == false
	input["az-snp-vtpm"].policy_migrate_ma == false
}

configuration := 2 if {
	input["az-tdx-vtpm"]
	input["az-tdx-vtpm"].quote.body.xfam in query_reference_value("xfam")
}

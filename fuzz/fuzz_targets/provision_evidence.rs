//! Fuzz the TEE evidence parsers: SNP report (HOST_DATA), TDX quote
//! (MRCONFIGID) and the TPM2_PCR_Extend response check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_provision::binding::{snp_report, tdx_quote, tpm};

fuzz_target!(|data: &[u8]| {
    let _ = snp_report::host_data(data);
    let _ = tdx_quote::mr_config_id(data);
    let _ = tpm::check_extend_response(data);
});

// Throwaway X.509 material for tests, made with the OpenSSL C API in memory: a test CA that
// issues server (and client) certificates, and self-signed certificates (the token issuer's
// signing certificate). Keys are fresh per object; nothing touches the machine's trust store.
//   TestCa ca;
//   const TestCertificate server = ca.issue({.common_name = "registry",
//                                            .dns_names = {"localhost"},
//                                            .ip_addresses = {"127.0.0.1"}});
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace stowage::test {

enum class KeyAlgorithm { kEcP256, kRsa2048 };

struct CertificateRequest {
  std::string common_name = {};
  std::vector<std::string> dns_names = {};     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses = {};  // subjectAltName IP entries
  bool server_auth = true;                     // extendedKeyUsage serverAuth
  bool client_auth = false;                    // extendedKeyUsage clientAuth
  KeyAlgorithm key = KeyAlgorithm::kEcP256;
  std::chrono::hours validity{24};  // notBefore is an hour in the past (clock skew)
};

struct TestCertificate {
  std::string cert_pem;
  std::string key_pem;   // unencrypted PKCS#8
  std::string cert_der;  // the certificate, DER (for a JWT x5c header)
};

// A self-signed CA (basicConstraints CA:TRUE, keyCertSign). Thread-safe once constructed.
class TestCa {
 public:
  explicit TestCa(std::string common_name = "Stowage Test CA",
                  KeyAlgorithm key = KeyAlgorithm::kEcP256);

  const TestCertificate& certificate() const { return ca_; }
  const std::string& cert_pem() const { return ca_.cert_pem; }
  // A leaf certificate signed by this CA. Throws stowage::Error (Internal) when OpenSSL fails.
  TestCertificate issue(const CertificateRequest& request) const;

 private:
  TestCertificate ca_;
};

// A self-signed end-entity certificate (no CA bit), e.g. a token signing certificate that a
// registry lists in its rootcertbundle.
TestCertificate self_signed_certificate(const CertificateRequest& request);

}  // namespace stowage::test

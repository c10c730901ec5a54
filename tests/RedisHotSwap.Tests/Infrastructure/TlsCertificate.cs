using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>
/// A self-signed certificate for 127.0.0.1 and localhost in an owner-only temporary directory (removed on dispose):
/// what a server serves TLS with, and, as <c>SSL_CERT_FILE</c>, what a process trusts.
/// </summary>
internal sealed class TlsCertificate : IDisposable
{
    private readonly DirectoryInfo directory;

    private TlsCertificate(DirectoryInfo directory) => this.directory = directory;

    /// <summary>The certificate, PEM.</summary>
    public string CertificatePath => Path.Combine(directory.FullName, "server.crt");

    private string KeyPath => Path.Combine(directory.FullName, "server.key");

    public static TlsCertificate Create()
    {
        var directory = Directory.CreateTempSubdirectory("redis-hotswap-tls-");
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var tls = new TlsCertificate(directory);
        File.WriteAllText(tls.CertificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(tls.KeyPath, key.ExportPkcs8PrivateKeyPem());
        return tls;
    }

    /// <summary>A server's settings to serve TLS on <paramref name="port"/> (beside its plain port), clients unauthenticated.</summary>
    public string[] ServerSettings(int port) =>
        [$"tls-port {port}", $"tls-cert-file {CertificatePath}", $"tls-key-file {KeyPath}", $"tls-ca-cert-file {CertificatePath}", "tls-auth-clients no"];

    public void Dispose() => directory.Delete(recursive: true);
}

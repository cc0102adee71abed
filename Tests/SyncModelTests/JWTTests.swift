import Crypto
import Foundation
import SyncEngine
import SyncModel
import SyncTestSupport
import Synchronization
import Testing

// Test keys (generated for these tests with openssl; never used anywhere else). The expected thumbprints
// and the RS384 signature were computed independently with Python `cryptography` and sekmet's JWK helpers.
private enum TestKeys {
    static let ec384SEC1 = """
        -----BEGIN EC PRIVATE KEY-----
        MIGkAgEBBDDJDpXTuMPm2rmH3oZ/gp5dkImPzzTLv6t70d9ZpmPrFV1UBa/WAakV
        bQna/oMkMkegBwYFK4EEACKhZANiAATx/qJdNkKAxG+GEdAVcS5+0gqaIllxITvO
        yUPegOJU7EKzecWyTe375q+ihSHtQkpM8jbRGgoTXxDtBMZVs5F8LAnQlz9r+7Ew
        dO1VDvPk0TnpyeRJ5i4EJsF71/i/Gb8=
        -----END EC PRIVATE KEY-----
        """
    static let ec384PKCS8 = """
        -----BEGIN PRIVATE KEY-----
        MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDJDpXTuMPm2rmH3oZ/
        gp5dkImPzzTLv6t70d9ZpmPrFV1UBa/WAakVbQna/oMkMkehZANiAATx/qJdNkKA
        xG+GEdAVcS5+0gqaIllxITvOyUPegOJU7EKzecWyTe375q+ihSHtQkpM8jbRGgoT
        XxDtBMZVs5F8LAnQlz9r+7EwdO1VDvPk0TnpyeRJ5i4EJsF71/i/Gb8=
        -----END PRIVATE KEY-----
        """
    static let ec384Public = """
        -----BEGIN PUBLIC KEY-----
        MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE8f6iXTZCgMRvhhHQFXEuftIKmiJZcSE7
        zslD3oDiVOxCs3nFsk3t++avooUh7UJKTPI20RoKE18Q7QTGVbORfCwJ0Jc/a/ux
        MHTtVQ7z5NE56cnkSeYuBCbBe9f4vxm/
        -----END PUBLIC KEY-----
        """
    static let ec384Thumbprint = "iHyy00khG0AYZvQNX8dqOtnyQzQi9fNpdDP8m6pWd4E"
    static let ec384X = "8f6iXTZCgMRvhhHQFXEuftIKmiJZcSE7zslD3oDiVOxCs3nFsk3t--avooUh7UJK"
    static let ec384Y = "TPI20RoKE18Q7QTGVbORfCwJ0Jc_a_uxMHTtVQ7z5NE56cnkSeYuBCbBe9f4vxm_"

    static let ec256 = """
        -----BEGIN EC PRIVATE KEY-----
        MHcCAQEEIK3koek5oYgMX8IvWUurRScpQDbFPBmR/tQ9/lpCC99GoAoGCCqGSM49
        AwEHoUQDQgAEZuwiGZJ7jv/RVdzmK3ufeNdjkogKB0wHnjDSwGjM2f/JSFhWMuTS
        qKnEGdaD8LF2AhuwogzH7zdGJJFZMJd9FQ==
        -----END EC PRIVATE KEY-----
        """
    static let encrypted = """
        -----BEGIN ENCRYPTED PRIVATE KEY-----
        MIIBHDBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQIX1n0GJvQSYMCAggA
        MAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBC82npbQVCcnRiIbLYFrqqBBIHA
        CLdRGKYY1TAQ/HVkdCHW6O725cEdjKgJV/DMYRhnMi5T6uJKnsjdTyrsO6wsIhnL
        mDGxVNLs/KJSjPV0lsrVU+CNc3UMatVj8zz6Rz1eEGzML2qRvxs1zKY7Q8PzYBCN
        bLmHKFQAMKidSF1Nx2axLZOvPNR6XdYdRN2GvRx2Ch+iit8Og3MU8ce7mk6b6+Yo
        sDijPcfe2FWxp+7nW/dLcbKBkeJHqJH1Pw9tdKsqEAZe++vMmlUMdzfq6aMB9e6E
        -----END ENCRYPTED PRIVATE KEY-----
        """

    static let rsaPKCS1 = """
        -----BEGIN RSA PRIVATE KEY-----
        MIIEpAIBAAKCAQEA3/bmokLM2xJf7fzRRhtPTVNj6kfKMKIel8+SIhMG2urWSh85
        63Rnk+CKd/U7W9scsm8/BotuPLmNdTr7UG3cxXbPcAgWG7XE2K3eM3fJDJsALAVB
        YenB+U0ZkuNqsc9+pikCuwkaFrFjE357/qbbtq6PU7pV93pnGN5/YrKMMKfyMQQh
        Fg+1sZ+bz4S2KZb68S4pqUrr6ZAw75N2/wOC4EVRbDI5uxACkgW2jPCPWJPJucAt
        jvfP5DFUCulta52w0YvLpfIPWg1GuGxnPIUbMpI4NUmqs/xotKFOFLJmHM50YLBd
        Ikge0I4V9J/uJdY42MKGebhNVcfUt/KqAj9r3wIDAQABAoIBACAGMuZCvP4aO4NR
        Ii9vGkDJSsEmMMARfmRgttmOdO16pNeGbYbAZ0sa0VHjy/APfaP6Cj4KU+H0+kgn
        /eV7QBUwLusrDNY7gIEnI12ipCncRAMHYVj5ztWx85UwVYJFVCu4M37BB2z1QmB4
        NoysGUCe5zmmrEIty24f6oEXXLpcFMilRlcezuK8kkZ5zl71Uh+Q+bj4eps/Y2F4
        WF2GmcpMBiguPgwQxS/xancLLB5TzI17KcLst8aK5ggPaLXh7+EQxPS1uQ4hjzBN
        drnwnfGoi6UN7q5btPZFOh3IZjPcA62Igvc6CLv7k0bhUF/WgphIkORM7t9srlZ4
        3joBAnkCgYEA/kbubM5wTqFGAChQ7kNf775ijsUiwpPqzE2yhkOcEIH3+YZXLqoy
        Ly8Z2XaW2fsu009cUG/Lf3Kq5NvC8J8Q5USvDC5ujY/p7UwR9ArWP/irlR75CVn0
        SNaYNvd73e6NECHG94vAZPxyQPAR0I3q2VJUnz69D670nPhIzltFLIMCgYEA4Xtj
        q8zgnHvOzaT1vsELDxunbX1aP1xP1554q7q/1xgEZBqDs0ig0Sd1z1xnje5LA3BT
        cFZ6x9hAPORsNcptxJx/e4pYRLy1P2uEFRJI71MvL62dieCXWH+zPtysTTh+bvCH
        v1z4cT5JXVnhpehgArP966/anjZQJqSq2YZhXHUCgYEA148+NJNVdfMWKrAC29nW
        DKHzX2ETtKw80nHTtCrAtOXZWHlgkzjJTmK5oTb9b1GXQp/2fGIpu6Nz6Iu82Mug
        QRxW4RbDtdKY1wgz+BTvyE+A9evJ5vmRM+ZoJ8DqCxxeDZz01Ypt0a6JFS/vikOl
        IhK/ljhTgmYpDKEW54lMPQ0CgYEArx6Yq25kJ8SUOezbGzpsb2Bn6UZI2BrGu8yN
        JbrVkaVKi8B39r76f1ZpThITLw0aX2JWu1G+7AUM5v30+NXt6Jwu+nDY2xHApq/H
        FmJsGMt/Q0VQrCus/4O2X6UdgJ/Wuiy/ESWQosrgScsr0CGop5DJLcoXPXcrSsfr
        FSQj650CgYBiVuUnqqixEo+yNvN67iHMYqAb9IfQKyHIunqGU9zG1AbQFqOSMW5N
        0iaiM63rmvsJ8E9t8nuUbAwN4WT/AXmYIwmhrnJ/w61BSn2UHuXSSSQNzZa7N9u3
        3vC1vNVNrhy5NtypQ9VXkvXK5SAN1de9eX16Qe/0BSTmsDZdQ8w0iA==
        -----END RSA PRIVATE KEY-----
        """
    static let rsaPKCS8 = """
        -----BEGIN PRIVATE KEY-----
        MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDf9uaiQszbEl/t
        /NFGG09NU2PqR8owoh6Xz5IiEwba6tZKHznrdGeT4Ip39Ttb2xyybz8Gi248uY11
        OvtQbdzFds9wCBYbtcTYrd4zd8kMmwAsBUFh6cH5TRmS42qxz36mKQK7CRoWsWMT
        fnv+ptu2ro9TulX3emcY3n9isowwp/IxBCEWD7Wxn5vPhLYplvrxLimpSuvpkDDv
        k3b/A4LgRVFsMjm7EAKSBbaM8I9Yk8m5wC2O98/kMVQK6W1rnbDRi8ul8g9aDUa4
        bGc8hRsykjg1Saqz/Gi0oU4UsmYcznRgsF0iSB7QjhX0n+4l1jjYwoZ5uE1Vx9S3
        8qoCP2vfAgMBAAECggEAIAYy5kK8/ho7g1EiL28aQMlKwSYwwBF+ZGC22Y507Xqk
        14ZthsBnSxrRUePL8A99o/oKPgpT4fT6SCf95XtAFTAu6ysM1juAgScjXaKkKdxE
        AwdhWPnO1bHzlTBVgkVUK7gzfsEHbPVCYHg2jKwZQJ7nOaasQi3Lbh/qgRdculwU
        yKVGVx7O4rySRnnOXvVSH5D5uPh6mz9jYXhYXYaZykwGKC4+DBDFL/FqdwssHlPM
        jXspwuy3xormCA9oteHv4RDE9LW5DiGPME12ufCd8aiLpQ3urlu09kU6HchmM9wD
        rYiC9zoIu/uTRuFQX9aCmEiQ5Ezu32yuVnjeOgECeQKBgQD+Ru5sznBOoUYAKFDu
        Q1/vvmKOxSLCk+rMTbKGQ5wQgff5hlcuqjIvLxnZdpbZ+y7TT1xQb8t/cqrk28Lw
        nxDlRK8MLm6Nj+ntTBH0CtY/+KuVHvkJWfRI1pg293vd7o0QIcb3i8Bk/HJA8BHQ
        jerZUlSfPr0PrvSc+EjOW0UsgwKBgQDhe2OrzOCce87NpPW+wQsPG6dtfVo/XE/X
        nnirur/XGARkGoOzSKDRJ3XPXGeN7ksDcFNwVnrH2EA85Gw1ym3EnH97ilhEvLU/
        a4QVEkjvUy8vrZ2J4JdYf7M+3KxNOH5u8Ie/XPhxPkldWeGl6GACs/3rr9qeNlAm
        pKrZhmFcdQKBgQDXjz40k1V18xYqsALb2dYMofNfYRO0rDzScdO0KsC05dlYeWCT
        OMlOYrmhNv1vUZdCn/Z8Yim7o3Poi7zYy6BBHFbhFsO10pjXCDP4FO/IT4D168nm
        +ZEz5mgnwOoLHF4NnPTVim3RrokVL++KQ6UiEr+WOFOCZikMoRbniUw9DQKBgQCv
        HpirbmQnxJQ57NsbOmxvYGfpRkjYGsa7zI0lutWRpUqLwHf2vvp/VmlOEhMvDRpf
        Yla7Ub7sBQzm/fT41e3onC76cNjbEcCmr8cWYmwYy39DRVCsK6z/g7ZfpR2An9a6
        LL8RJZCiyuBJyyvQIainkMktyhc9dytKx+sVJCPrnQKBgGJW5SeqqLESj7I283ru
        IcxioBv0h9ArIci6eoZT3MbUBtAWo5Ixbk3SJqIzreua+wnwT23ye5RsDA3hZP8B
        eZgjCaGucn/DrUFKfZQe5dJJJA3Nlrs327fe8LW81U2uHLk23KlD1VeS9crlIA3V
        1715fXpB7/QFJOawNl1DzDSI
        -----END PRIVATE KEY-----
        """
    static let rsaThumbprint = "1tNlbguP32p5BccggOuoizejDy7CfaVeU-ljJOgQfH0"
    static let rsaModulusPrefix = "3_bmokLM2xJf7fzRRhtPTVNj6kfKMKIel8-SIhMG2urWSh8563Rnk"
    /// RS384 (PKCS#1 v1.5, SHA-384) of `rsaMessage` with `rsaPKCS1`; PKCS#1 v1.5 is deterministic.
    static let rsaMessage = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJ0ZXN0In0"
    static let rsaSignature =
        "kFFYNUiMe1iFgLPHGNHP1xpW27AdZFpkyUFiBRilo73r3StHpcTXKuIfKWuy-5_Lzs3MrEqnSO_kXariCqzkh7_OoJdh6b6CsTOi3NvII7A5"
        + "iRC8IuMfn_F0VwWEJ6hm0FDmZfp0jxWiBSCUENx12MW6bzP4LNBVqtOur-tcyXFBVC57EAcN1A4BgHXlUR3Hgw-RwR5QwvfqzHNEC2hSY"
        + "F7dIS_6dNHKuiHyyX4lkWVTxcNkDfrRC1LdvwhAUX2Q-v5UMZRnVMjd_dD_kOb5V_EBssKRc7uyJD51grcL_nIT7fmIE-0vLPosceOt3WcY"
        + "xrYXUGKcu7dZIdRSCQ3IwA"

    static let rsa1024 = """
        -----BEGIN PRIVATE KEY-----
        MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBAOWKxYoCdfyfV8pP
        1cwbhZhsyWAfKkE1aMx8ljsCgKSopcjKaUFQoMYyXNbpgDO7p1R5P9wnsksccs9u
        7kNHdiodmc5kUZoqB8gqjeYez/E3gcNqR2qt6sqBQY7GFQa8JO+dmglPSFYofOZP
        ioCoeop22UB1cdLCRcSwUuiuO6QdAgMBAAECgYAI1xtcgVPB8vESnZiCT90JTcdD
        qG+cK05p8bJne2Uw8j3QSdtb5JsMhwwESuHhHC0Jl9HZzL2VHvdc/cy3Up0+V1EW
        7rUPdASUxDaOafWWadaUtEFvqcJR08IZoZjaHGThEacnorP13Ayp7iKDJsDc6AdC
        MhlfVIAYe6mYHGswEQJBAPWCqgMj/ndfMvdEAUFVzHuPJeVrtscUHpSvWGZG+eRp
        GJUQSa0Qh27VCPddhORm+qWMwMcy7JUZrn858eDKM6sCQQDvWXMbZcg3UhaKLaJG
        9diFE6ASO3UZWcGfFryxgWbIa1yoxNnQ6kLBg45akKgP8RyBw4zuZBQ8pbLRi803
        Zz9XAkArCCcCe+mbRL1rJ6lMqVw5AAM1bibQSA+AIifNbX1Zcq5TWlJ/mhkS7RYw
        PV0Qp5ghMkWL5Log/CpgtGhX7TkXAkBtXsd9fn4F4WnRTFb56/87mCMuEaNJqT0T
        sDUbO5E3BfA6YnFRyKomeTIEalORrVCkbzIoAO1KZUEYBbUJmxFTAkEA3CC5Njsf
        rzAHDBirowIBJRywSc5xUxyyp5FXn5LmxUNNFQWI7F1aKFzrWHLoN6GqV1z+EymS
        hepkmREQBjBSaw==
        -----END PRIVATE KEY-----
        """
}

@Suite struct JWTTests {
    // MARK: base64url

    @Test func base64URLEncodesWithoutPaddingAndWithTheURLAlphabet() {
        #expect(Base64URL.encode(Data()) == "")
        #expect(Base64URL.encode(Data("f".utf8)) == "Zg")
        #expect(Base64URL.encode(Data("fo".utf8)) == "Zm8")
        #expect(Base64URL.encode(Data("foo".utf8)) == "Zm9v")
        #expect(Base64URL.encode(Data("foob".utf8)) == "Zm9vYg")
        #expect(Base64URL.encode(Data([0xFB, 0xFF])) == "-_8")  // base64: "+/8="
        #expect(Base64URL.encode(Data([0xFF, 0xFE, 0xFD])) == "__79")  // base64: "//79"
        #expect(Base64URL.encode(Data([0x00])) == "AA")
    }

    @Test func base64URLDecodesWhatItEncodesAndRefusesOtherAlphabets() {
        for length in 0..<70 {
            let bytes = Data((0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 251) })
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes, "length \(length)")
        }
        #expect(Base64URL.decode("") == Data())
        #expect(Base64URL.decode("-_8") == Data([0xFB, 0xFF]))
        #expect(Base64URL.decode("Zg==") == nil, "padding is not part of base64url in JWS")
        #expect(Base64URL.decode("+/8") == nil, "standard alphabet")
        #expect(Base64URL.decode("Z") == nil, "a length of 1 mod 4 cannot be decoded")
        #expect(Base64URL.decode("Zm 9v") == nil)
        #expect(Base64URL.decode("Zm9v\n") == nil)
        #expect(Base64URL.decode("Zé") == nil)
    }

    // MARK: Keys

    @Test func ecP384KeysInSEC1AndPKCS8AreES384WithTheExpectedJWK() throws {
        for pem in [TestKeys.ec384SEC1, TestKeys.ec384PKCS8] {
            let key = try JWTSigningKey(pemRepresentation: pem)
            #expect(key.algorithm == .es384)
            #expect(key.thumbprint == TestKeys.ec384Thumbprint)
            let jwk = key.publicJWK()
            #expect(jwk["kty"] == "EC")
            #expect(jwk["crv"] == "P-384")
            #expect(jwk["x"] == TestKeys.ec384X)
            #expect(jwk["y"] == TestKeys.ec384Y)
            #expect(jwk["alg"] == "ES384")
            #expect(jwk["kid"] == TestKeys.ec384Thumbprint)
            #expect(jwk["d"] == nil, "never the private part")
            #expect(key.publicJWK(keyID: "k-1")["kid"] == "k-1")
        }
    }

    @Test func rsaKeysInPKCS1AndPKCS8AreRS384WithTheExpectedJWK() throws {
        for pem in [TestKeys.rsaPKCS1, TestKeys.rsaPKCS8] {
            let key = try JWTSigningKey(pemRepresentation: pem)
            #expect(key.algorithm == .rs384)
            #expect(key.thumbprint == TestKeys.rsaThumbprint)
            let jwk = key.publicJWK()
            #expect(jwk["kty"] == "RSA")
            #expect(jwk["e"] == "AQAB")
            #expect(jwk["n"]?.hasPrefix(TestKeys.rsaModulusPrefix) == true)
            #expect(jwk["alg"] == "RS384")
            #expect(jwk["d"] == nil)
        }
    }

    @Test func rs384SignatureIsPKCS1v15OverSHA384() throws {
        let key = try JWTSigningKey(pemRepresentation: TestKeys.rsaPKCS8)
        let signature = try key.sign(Data(TestKeys.rsaMessage.utf8))
        #expect(Base64URL.encode(signature) == TestKeys.rsaSignature)
    }

    @Test func unusableKeysAreRefusedWithTheReason() throws {
        let cases: [(String, JWTKeyError)] = [
            (TestKeys.ec256, .unsupportedCurve("P-256")),
            (TestKeys.encrypted, .encrypted),
            (TestKeys.ec384Public, .publicKeyOnly),
            (TestKeys.rsa1024, .rsaTooSmall(bits: 1024)),
            ("not a key", .notAPrivateKey),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", .notAPrivateKey),
        ]
        for (pem, expected) in cases {
            #expect(throws: expected) { try JWTSigningKey(pemRepresentation: pem) }
        }
        #expect(JWTKeyError.encrypted.description.contains("-nocrypt"))
    }

    @Test func generatedKeysSurviveTheirPEM() throws {
        let ec = JWTSigningKey.generateES384()
        let ecBack = try JWTSigningKey(pemRepresentation: ec.pemRepresentation)
        #expect(ecBack.algorithm == .es384)
        #expect(ecBack.thumbprint == ec.thumbprint)
        #expect(JWTSigningKey.generateES384().thumbprint != ec.thumbprint)

        let rsa = try JWTSigningKey.generateRS384()
        let rsaBack = try JWTSigningKey(pemRepresentation: rsa.pemRepresentation)
        #expect(rsaBack.algorithm == .rs384)
        #expect(rsaBack.thumbprint == rsa.thumbprint)

        let jwks = try #require(try JSONSerialization.jsonObject(with: ec.publicJWKS(keyID: "k")) as? [String: Any])
        let keys = try #require(jwks["keys"] as? [[String: String]])
        #expect(keys == [ec.publicJWK(keyID: "k")])
    }

    // MARK: Client assertion

    @Test func es384ClientAssertionHasTheSMARTHeaderAndClaimsAndVerifies() throws {
        let key = try JWTSigningKey(pemRepresentation: TestKeys.ec384PKCS8)
        let jwt = try JWT.clientAssertion(
            clientID: "ehr-sync-practice", tokenURL: "https://ehr.example/auth/token", keyID: "key-2026", key: key,
            now: 1_700_000_000.9, jti: "jti-1")
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        #expect(parts.count == 3)
        #expect(!jwt.contains("=") && !jwt.contains("+") && !jwt.contains("/"))
        let decoded = try #require(JWT.decode(jwt))
        #expect(String(decoding: decoded.header, as: UTF8.self) == #"{"alg":"ES384","kid":"key-2026","typ":"JWT"}"#)
        #expect(
            String(decoding: decoded.claims, as: UTF8.self)
                == #"{"aud":"https://ehr.example/auth/token","exp":1700000300,"iss":"ehr-sync-practice","#
                + #""jti":"jti-1","sub":"ehr-sync-practice"}"#)
        #expect(decoded.signature.count == 96, "ES384 is r || s, 48 bytes each")

        let publicKey = try P384.Signing.PublicKey(pemRepresentation: TestKeys.ec384Public)
        let signature = try P384.Signing.ECDSASignature(rawRepresentation: decoded.signature)
        let signingInput = Data((parts[0] + "." + parts[1]).utf8)
        #expect(publicKey.isValidSignature(signature, for: signingInput))
        let tampered = Data((parts[0] + "." + Base64URL.encode(Data(#"{"iss":"someone-else"}"#.utf8))).utf8)
        #expect(!publicKey.isValidSignature(signature, for: tampered))
    }

    @Test func clientAssertionDefaultsToTheThumbprintAsKidAndAFreshJTI() throws {
        let key = try JWTSigningKey(pemRepresentation: TestKeys.ec384SEC1)
        let a = try #require(
            JWT.decode(try JWT.clientAssertion(clientID: "c", tokenURL: "https://t", keyID: nil, key: key, now: 0)))
        let b = try #require(
            JWT.decode(try JWT.clientAssertion(clientID: "c", tokenURL: "https://t", keyID: nil, key: key, now: 0)))
        let header = try JSONDecoder().decode(JOSEHeader.self, from: a.header)
        #expect(header == JOSEHeader(alg: "ES384", typ: "JWT", kid: TestKeys.ec384Thumbprint))
        let claimsA = try JSONDecoder().decode(ClientAssertionClaims.self, from: a.claims)
        let claimsB = try JSONDecoder().decode(ClientAssertionClaims.self, from: b.claims)
        #expect(claimsA.jti != claimsB.jti)
        #expect(claimsA.jti.count == 22, "128 bits in base64url")
        #expect(claimsA.iss == "c" && claimsA.sub == "c" && claimsA.aud == "https://t" && claimsA.exp == 300)
    }

    @Test func assertionLifetimeNeverExceedsFiveMinutes() {
        let claims = ClientAssertionClaims(clientID: "c", tokenURL: "https://t", now: 1000.5, lifetime: 3600)
        #expect(claims.exp == 1300)
        #expect(ClientAssertionClaims(clientID: "c", tokenURL: "https://t", now: 1000, lifetime: 60).exp == 1060)
    }

    @Test func decodeRefusesMalformedTokens() {
        #expect(JWT.decode("a.b") == nil)
        #expect(JWT.decode("a.b.c.d") == nil)
        #expect(JWT.decode("e30.e30.A") == nil, "bad base64url length")
        #expect(JWT.decode("e30.e30.") != nil, "an empty signature part is well-formed")
    }
}

// MARK: - SMARTAuthorizer with a fake token endpoint

/// Answers token requests from a script and records what was sent.
private final class FakeTokenEndpoint: Sendable {
    struct Request {
        var url: URL
        var fields: [String: String]
    }

    private let state: Mutex<(requests: [Request], answers: [(Int, String)])>
    private let delay: Duration

    init(answers: [(Int, String)], delay: Duration = .zero) {
        state = Mutex(([], answers))
        self.delay = delay
    }

    static func bearer(_ token: String, expiresIn: String = "3600") -> (Int, String) {
        (200, #"{"access_token":"\#(token)","token_type":"Bearer","expires_in":\#(expiresIn),"scope":"system/*.read"}"#)
    }

    var requests: [Request] { state.withLock { $0.requests } }

    var transport: SMARTAuthorizer.Transport {
        { url, form in
            var fields: [String: String] = [:]
            for pair in String(decoding: form, as: UTF8.self).split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                fields[kv[0]] = kv.count > 1 ? kv[1].removingPercentEncoding : ""
            }
            let answer = self.state.withLock { s -> (Int, String) in
                s.requests.append(Request(url: url, fields: fields))
                return s.answers.count > 1 ? s.answers.removeFirst() : s.answers[0]
            }
            if self.delay > .zero { try await Task.sleep(for: self.delay) }
            if answer.0 < 0 { throw URLError(.cannotConnectToHost) }
            return (answer.0, Data(answer.1.utf8))
        }
    }
}

private final class FakeClock: Sendable {
    private let value = Mutex(1_700_000_000.0)
    var now: @Sendable () -> Double { { self.value.withLock { $0 } } }
    func advance(_ seconds: Double) { value.withLock { $0 += seconds } }
}

@Suite struct JWTClientAuthorizerTests {
    let tokenURL = URL(string: "https://ehr.example/oauth2/token")!

    fileprivate func authorizer(_ endpoint: FakeTokenEndpoint, clock: FakeClock = FakeClock()) throws
        -> SMARTAuthorizer
    {
        SMARTAuthorizer(
            clientID: "practice-42", tokenURL: tokenURL, scopes: "system/*.read system/Patient.rs", keyID: nil,
            key: try JWTSigningKey(pemRepresentation: TestKeys.ec384PKCS8), transport: endpoint.transport,
            now: clock.now)
    }

    @Test func tokenRequestIsAClientCredentialsFormWithASignedAssertion() async throws {
        let endpoint = FakeTokenEndpoint(answers: [FakeTokenEndpoint.bearer("tok.en-1")])
        let smart = try authorizer(endpoint)
        #expect(try await smart.authorization() == "Bearer tok.en-1")
        let request = try #require(endpoint.requests.first)
        #expect(request.url == tokenURL)
        #expect(request.fields["grant_type"] == "client_credentials")
        #expect(request.fields["scope"] == "system/*.read system/Patient.rs")
        #expect(request.fields["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        let assertion = try #require(request.fields["client_assertion"])
        let parts = assertion.split(separator: ".").map(String.init)
        let decoded = try #require(JWT.decode(assertion))
        let header = try JSONDecoder().decode(JOSEHeader.self, from: decoded.header)
        #expect(header == JOSEHeader(alg: "ES384", typ: "JWT", kid: TestKeys.ec384Thumbprint))
        let claims = try JSONDecoder().decode(ClientAssertionClaims.self, from: decoded.claims)
        #expect(claims.iss == "practice-42" && claims.sub == "practice-42")
        #expect(claims.aud == tokenURL.absoluteString)
        #expect(claims.exp == 1_700_000_300)
        let publicKey = try P384.Signing.PublicKey(pemRepresentation: TestKeys.ec384Public)
        #expect(
            publicKey.isValidSignature(
                try P384.Signing.ECDSASignature(rawRepresentation: decoded.signature),
                for: Data((parts[0] + "." + parts[1]).utf8)))
    }

    @Test func formEncodingEscapesReservedCharacters() async throws {
        let endpoint = FakeTokenEndpoint(answers: [FakeTokenEndpoint.bearer("t")])
        let captured = Mutex<String>("")
        let smart = SMARTAuthorizer(
            clientID: "c", tokenURL: tokenURL, scopes: "system/*.read a&b=c+d", keyID: "k",
            key: try JWTSigningKey(pemRepresentation: TestKeys.ec384PKCS8),
            transport: { url, form in
                captured.withLock { $0 = String(decoding: form, as: UTF8.self) }
                return try await endpoint.transport(url, form)
            })
        _ = try await smart.accessToken()
        let form = captured.withLock { $0 }
        #expect(form.contains("&scope=system%2F%2A.read%20a%26b%3Dc%2Bd&"))
        #expect(form.hasPrefix("grant_type=client_credentials&"))
        #expect(endpoint.requests.first?.fields["scope"] == "system/*.read a&b=c+d")
    }

    @Test func tokenIsCachedUntilShortlyBeforeItExpires() async throws {
        let endpoint = FakeTokenEndpoint(answers: [
            FakeTokenEndpoint.bearer("first", expiresIn: "300"), FakeTokenEndpoint.bearer("second", expiresIn: "300"),
        ])
        let clock = FakeClock()
        let smart = try authorizer(endpoint, clock: clock)
        #expect(try await smart.accessToken() == "first")
        clock.advance(200)
        #expect(try await smart.accessToken() == "first")
        #expect(endpoint.requests.count == 1)
        clock.advance(41)  // 241 s: within the 60 s margin before expiry
        #expect(try await smart.accessToken() == "second")
        #expect(endpoint.requests.count == 2)
        await smart.invalidate()
        #expect(try await smart.accessToken() == "second")
        #expect(endpoint.requests.count == 3)
    }

    @Test func shortLivedTokensKeepAProportionalMargin() async throws {
        let endpoint = FakeTokenEndpoint(answers: [FakeTokenEndpoint.bearer("a", expiresIn: "\"10\"")])
        let clock = FakeClock()
        let smart = try authorizer(endpoint, clock: clock)
        _ = try await smart.accessToken()
        clock.advance(7.9)
        _ = try await smart.accessToken()
        #expect(endpoint.requests.count == 1)
        clock.advance(0.2)  // 8.1 s of 10: past the 2 s margin
        _ = try await smart.accessToken()
        #expect(endpoint.requests.count == 2)
    }

    @Test func concurrentCallersShareOneTokenRequest() async throws {
        let endpoint = FakeTokenEndpoint(answers: [FakeTokenEndpoint.bearer("shared")], delay: .milliseconds(100))
        let smart = try authorizer(endpoint)
        let values = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<20 { group.addTask { try await smart.authorization() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(values.count == 20)
        #expect(Set(values) == ["Bearer shared"])
        #expect(endpoint.requests.count == 1)
        #expect(await smart.tokenRequests == 1)
    }

    @Test func refusedClientIsAClearNonRetriedErrorWithoutTheAssertion() async throws {
        let endpoint = FakeTokenEndpoint(answers: [
            (
                401,
                #"{"error":"invalid_client","error_description":"client_assertion verification failed: Signature verification failed"}"#
            )
        ])
        let smart = try authorizer(endpoint)
        do {
            _ = try await smart.accessToken()
            Issue.record("expected a refusal")
        } catch {
            #expect(
                error
                    == .refused(
                        tokenURL: tokenURL.absoluteString, status: 401, error: "invalid_client",
                        errorDescription: "client_assertion verification failed: Signature verification failed"))
            #expect(!error.isTransient)
        }
        // Through authorization(): a RemoteError, which FHIRClient does not retry.
        do {
            _ = try await smart.authorization()
            Issue.record("expected a refusal")
        } catch let error as RemoteError {
            let text = error.description
            #expect(text.contains("HTTP 401 invalid_client: client_assertion verification failed"))
            #expect(text.contains("[ehr.smart]"))
            #expect(text.contains(tokenURL.absoluteString))
            let assertion = try #require(endpoint.requests.last?.fields["client_assertion"])
            #expect(!text.contains(assertion))
            #expect(!text.contains("eyJ"), "no JWT in an error")
        }
        #expect(endpoint.requests.count == 2, "a failure is not cached: every call asks again")
    }

    @Test func unreachableOrOverloadedEndpointIsTransient() async throws {
        for answer in [(503, "busy"), (429, ""), (-1, "")] {
            let smart = try authorizer(FakeTokenEndpoint(answers: [answer]))
            do {
                _ = try await smart.authorization()
                Issue.record("expected an error for \(answer.0)")
            } catch let error as SMARTAuthError {
                #expect(error.isTransient, "\(answer.0): \(error)")
                #expect(error.description.hasPrefix("SMART token endpoint unavailable: "))
            }
        }
    }

    @Test func unusableTokenResponsesAreRefused() async throws {
        let bad: [(String, String)] = [
            (#"{"token_type":"bearer","expires_in":60}"#, "no access_token"),
            (#"{"access_token":"abc","token_type":"mac","expires_in":60}"#, "token_type is mac"),
            (#"{"access_token":"abc","expires_in":60}"#, "token_type is missing"),
            (#"{"access_token":"ab\r\nX-Evil: 1","token_type":"bearer"}"#, "characters a bearer token cannot"),
            (#"{"access_token":"abc","token_type":"bearer","expires_in":-5}"#, "expires_in"),
            ("<html>", "not a JSON object"),
        ]
        for (body, reason) in bad {
            let smart = try authorizer(FakeTokenEndpoint(answers: [(200, body)]))
            do {
                _ = try await smart.accessToken()
                Issue.record("accepted \(body)")
            } catch {
                #expect(!error.isTransient)
                #expect(error.description.contains(reason), "\(error)")
            }
        }
        let redirect = try authorizer(FakeTokenEndpoint(answers: [(302, "")]))
        await #expect(throws: SMARTAuthError.self) { try await redirect.accessToken() }
    }

    @Test func missingExpiresInAssumesAShortLife() async throws {
        let endpoint = FakeTokenEndpoint(answers: [(200, #"{"access_token":"x","token_type":"bearer"}"#)])
        let clock = FakeClock()
        let smart = try authorizer(endpoint, clock: clock)
        _ = try await smart.accessToken()
        clock.advance(239)
        _ = try await smart.accessToken()
        #expect(endpoint.requests.count == 1)
        clock.advance(2)
        _ = try await smart.accessToken()
        #expect(endpoint.requests.count == 2)
    }

    // MARK: Key file

    @Test func privateKeyFileMustBeOwnedAndPrivate() throws {
        let dir = try TemporaryDirectory("smart-key")
        let path = dir.file("smart.pem")
        try Data(TestKeys.ec384PKCS8.utf8).write(to: URL(fileURLWithPath: path))

        chmod(path, 0o644)
        #expect {
            try SMARTAuthorizer.loadKey(path: path)
        } throws: { error in
            let text = "\(error)"
            return text.contains(path) && text.contains("mode 644") && text.contains("fix with: chmod 600 \(path)")
        }
        chmod(path, 0o600)
        #expect(try SMARTAuthorizer.loadKey(path: path).thumbprint == TestKeys.ec384Thumbprint)
        chmod(path, 0o400)
        #expect(try SMARTAuthorizer.loadKey(path: path).algorithm == .es384)

        #expect {
            try SMARTAuthorizer.loadKey(path: dir.file("missing.pem"))
        } throws: { "\($0)".contains("cannot read the SMART private key file \(dir.file("missing.pem"))") }

        let publicPath = dir.file("public.pem")
        try Data(TestKeys.ec384Public.utf8).write(to: URL(fileURLWithPath: publicPath))
        chmod(publicPath, 0o600)
        #expect {
            try SMARTAuthorizer.loadKey(path: publicPath)
        } throws: { "\($0)".contains(publicPath) && "\($0)".contains("must hold the private key") }
    }

    @Test func authorizerIsBuiltFromTheConfiguration() throws {
        let dir = try TemporaryDirectory("smart-key")
        let path = dir.file("smart.pem")
        try Data(TestKeys.rsaPKCS1.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        let config = try SyncConfiguration.parse(
            """
            [ehr]
            base_url = "https://ehr.example/fhir"
            [ehr.smart]
            client_id = "practice-42"
            private_key_file = "\(path)"
            key_id = "rsa-2026"
            token_url = "https://ehr.example/oauth2/token"
            [replica]
            state_dir = "/tmp/x"
            """, file: "test.toml")
        let smart = try SMARTAuthorizer(#require(config.ehr.smart))
        #expect(smart.clientID == "practice-42")
        #expect(smart.keyID == "rsa-2026")
        #expect(smart.scopes == "system/*.read")
        #expect(smart.tokenURL.absoluteString == "https://ehr.example/oauth2/token")
    }
}

/*
 * AES-128-CCM through OpenSSL's EVP interface, as BTHome, MiBeacon v4/v5 and
 * pvvx's encrypted formats use it (4-byte MIC), and the bare counter mode
 * that MiBeacon v2/v3 "legacy" encryption amounts to.
 */
#include "ble.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

static int ccm_init(EVP_CIPHER_CTX *c, bool enc, const uint8_t *key, const uint8_t *nonce,
		    size_t nonce_len, const uint8_t *tag, size_t tag_len)
{
	if (nonce_len < 7 || nonce_len > 13 || tag_len < 4 || tag_len > 16 || tag_len % 2)
		return -EINVAL;
	if (EVP_CipherInit_ex(c, EVP_aes_128_ccm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, (int)nonce_len, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, (int)tag_len, enc ? NULL : (void *)tag) != 1 ||
	    EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1)
		return -EIO;
	return 0;
}

/* CCM wants the total length before the AAD and the AAD before the data. */
static int ccm_lengths(EVP_CIPHER_CTX *c, const uint8_t *aad, size_t aad_len, size_t len)
{
	int outl;
	if (EVP_CipherUpdate(c, NULL, &outl, NULL, (int)len) != 1)
		return -EIO;
	if (aad_len && EVP_CipherUpdate(c, NULL, &outl, aad, (int)aad_len) != 1)
		return -EIO;
	return 0;
}

int ble_ccm_decrypt(const uint8_t key[BLE_KEY_LEN], const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		    const uint8_t *tag, size_t tag_len, uint8_t *out)
{
	if (len == 0 || len > BLE_AD_MAX)
		return -EINVAL;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return -ENOMEM;
	int outl = 0;
	int rc = ccm_init(c, false, key, nonce, nonce_len, tag, tag_len);
	if (rc == 0)
		rc = ccm_lengths(c, aad, aad_len, len);
	/* In CCM the tag is checked by this one update call. */
	if (rc == 0 && EVP_CipherUpdate(c, out, &outl, in, (int)len) != 1)
		rc = -EBADMSG;
	if (rc)
		memset(out, 0, len);
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int ble_ccm_encrypt(const uint8_t key[BLE_KEY_LEN], const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		    uint8_t *tag, size_t tag_len, uint8_t *out)
{
	if (len == 0 || len > BLE_AD_MAX)
		return -EINVAL;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return -ENOMEM;
	int outl = 0;
	int rc = ccm_init(c, true, key, nonce, nonce_len, NULL, tag_len);
	if (rc == 0)
		rc = ccm_lengths(c, aad, aad_len, len);
	if (rc == 0 && (EVP_CipherUpdate(c, out, &outl, in, (int)len) != 1 ||
			EVP_CipherFinal_ex(c, out + outl, &outl) != 1 ||
			EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, (int)tag_len, tag) != 1))
		rc = -EIO;
	EVP_CIPHER_CTX_free(c);
	return rc;
}

/* CCM encrypts the payload with counter blocks A_i = flags | nonce | i,
 * i from 1, where flags = L - 1 and L = 15 - nonce length (2 here). */
int ble_ccm_ctr(const uint8_t key[BLE_KEY_LEN], const uint8_t nonce[13], const uint8_t *in,
		size_t len, uint8_t *out)
{
	if (len > BLE_AD_MAX)
		return -EINVAL;
	uint8_t iv[16] = {0x01};
	memcpy(iv + 1, nonce, 13);
	iv[15] = 1;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return -ENOMEM;
	int outl = 0, rc = 0;
	if (EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, key, iv) != 1 ||
	    (len && EVP_EncryptUpdate(c, out, &outl, in, (int)len) != 1))
		rc = -EIO;
	EVP_CIPHER_CTX_free(c);
	return rc;
}

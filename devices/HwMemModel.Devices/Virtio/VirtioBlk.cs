namespace HwMemModel.Devices.Virtio;

/// <summary>
/// Constants of the virtio block device (virtio 1.2, section 5.2 "Block Device"): device ID, feature bits,
/// configuration layout, request types and status codes.
/// </summary>
public static class VirtioBlk
{
    /// <summary>The virtio device ID of a block device.</summary>
    public const uint DeviceId = 2;

    /// <summary>Bytes per sector: capacity and request sectors count 512-byte units whatever the block size.</summary>
    public const int SectorSize = 512;

    /// <summary>Bytes of the device ID string GET_ID returns (NUL-padded, no terminator when 20 bytes long).</summary>
    public const int IdBytes = 20;

    /// <summary>Bytes of the request header: le32 type, le32 reserved, le64 sector.</summary>
    public const int RequestHeaderSize = 16;

    // ---------------------------------------------------------------- feature bits

    /// <summary>VIRTIO_BLK_F_SIZE_MAX (1): size_max holds the largest segment size.</summary>
    public const int FeatureSizeMax = 1;

    /// <summary>VIRTIO_BLK_F_SEG_MAX (2): seg_max holds the largest number of segments in a request.</summary>
    public const int FeatureSegMax = 2;

    /// <summary>VIRTIO_BLK_F_GEOMETRY (4): the geometry fields are valid.</summary>
    public const int FeatureGeometry = 4;

    /// <summary>VIRTIO_BLK_F_RO (5): the device is read-only.</summary>
    public const int FeatureRo = 5;

    /// <summary>VIRTIO_BLK_F_BLK_SIZE (6): blk_size holds the block size.</summary>
    public const int FeatureBlkSize = 6;

    /// <summary>VIRTIO_BLK_F_FLUSH (9): the device supports VIRTIO_BLK_T_FLUSH.</summary>
    public const int FeatureFlush = 9;

    /// <summary>VIRTIO_BLK_F_TOPOLOGY (10): the topology fields are valid.</summary>
    public const int FeatureTopology = 10;

    /// <summary>VIRTIO_BLK_F_CONFIG_WCE (11): the driver may switch the cache mode through writeback.</summary>
    public const int FeatureConfigWce = 11;

    /// <summary>VIRTIO_BLK_F_MQ (12): the device has more than one request queue.</summary>
    public const int FeatureMq = 12;

    // ---------------------------------------------------------------- configuration layout (struct virtio_blk_config)

    /// <summary>le64 capacity in 512-byte sectors.</summary>
    public const int ConfigCapacity = 0;

    /// <summary>le32 size_max.</summary>
    public const int ConfigSizeMax = 8;

    /// <summary>le32 seg_max.</summary>
    public const int ConfigSegMax = 12;

    /// <summary>geometry: le16 cylinders, u8 heads, u8 sectors.</summary>
    public const int ConfigGeometry = 16;

    /// <summary>le32 blk_size.</summary>
    public const int ConfigBlkSize = 20;

    /// <summary>topology: u8 physical_block_exp, u8 alignment_offset, le16 min_io_size, le32 opt_io_size.</summary>
    public const int ConfigTopology = 24;

    /// <summary>u8 writeback.</summary>
    public const int ConfigWriteback = 32;

    /// <summary>le16 num_queues.</summary>
    public const int ConfigNumQueues = 34;

    /// <summary>Bytes of configuration space the model presents (up to num_queues, as QEMU without discard and write zeroes).</summary>
    public const int ConfigSize = 36;

    // ---------------------------------------------------------------- requests

    /// <summary>VIRTIO_BLK_T_IN: read sectors into the device-writable data.</summary>
    public const uint TypeIn = 0;

    /// <summary>VIRTIO_BLK_T_OUT: write the device-readable data to sectors.</summary>
    public const uint TypeOut = 1;

    /// <summary>VIRTIO_BLK_T_FLUSH: commit completed writes to stable storage.</summary>
    public const uint TypeFlush = 4;

    /// <summary>VIRTIO_BLK_T_GET_ID: fetch the 20-byte device ID string.</summary>
    public const uint TypeGetId = 8;

    /// <summary>VIRTIO_BLK_S_OK: success.</summary>
    public const byte StatusOk = 0;

    /// <summary>VIRTIO_BLK_S_IOERR: device or driver error.</summary>
    public const byte StatusIoErr = 1;

    /// <summary>VIRTIO_BLK_S_UNSUPP: the request type is not supported.</summary>
    public const byte StatusUnsupp = 2;
}

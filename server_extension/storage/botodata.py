"""botocore's data files (S3's service model, its endpoint rules, the partitions), read
once per process.

Every botocore session reads them anew into a loader of its own: about 15 MB of each
server's memory once its S3 client exists. The server's sessions share one loader, and
the fork server fills it before it forks (``read_s3_client_data``), so every forked
server shares those pages instead of reading its own copy.
"""

import botocore.loaders
import botocore.session

SHARED_LOADER = botocore.loaders.create_loader()


def use_shared_data(session: botocore.session.Session) -> None:
    """Have ``session`` read botocore's data through the process's one loader."""
    session.register_component("data_loader", SHARED_LOADER)


def read_s3_client_data() -> None:
    """Fill the shared loader with what an S3 client reads. Builds a client and sends
    nothing; its keys are explicit, so no credential provider is consulted either."""
    session = botocore.session.get_session()
    use_shared_data(session)
    client = session.create_client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="unused",
        aws_secret_access_key="unused",
    )
    client.close()
